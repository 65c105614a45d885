package cluster_test

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/testutil"
)

// TestScale loads 100 and 1,000 routes from etcd (SLUICE_SCALE_ROUTES: other sizes, such as
// "100,1000,10000"; SLUICE_SCALE_CHANGES: another number of changes, for a profile) and reports the time to load, the heap the node holds, and the cost of
// one route change: write to applied (median of scaleChanges), the CPU time of this
// process (the node, its gateway and the test's client) per change, which the load of a
// shared machine disturbs less than wall time, and the bytes allocated per change (which
// drive the garbage collector's share of that CPU).
func TestScale(t *testing.T) {
	if testing.Short() || testutil.RaceEnabled {
		t.Skip("a measurement: skipped with -short and under the race detector (10x slower, numbers meaningless)")
	}
	e := startEtcd(t)
	cli := e.Client(t)
	be := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	type result struct {
		routes       int
		load, change time.Duration
		cpu          time.Duration // per change; 0 where the platform does not say
		heap         uint64
		alloc        uint64 // bytes allocated per change
	}
	var res []result
	changes := scaleChanges(t)
	for _, n := range scaleSizes(t) {
		prefix := fmt.Sprintf("/s%d", n)
		put(t, cli, prefix+"/upstreams/app", upstreamJSON("app", be.Addr()))
		for i := 0; i < n; i += 100 {
			var ops []clientv3.Op
			for j := i; j < min(n, i+100); j++ {
				id := fmt.Sprintf("r%04d", j)
				ops = append(ops, clientv3.OpPut(prefix+"/routes/"+id, routeJSON(id, "/"+id, "app", "")))
			}
			if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
				t.Fatal(err)
			}
		}
		before := heap()
		start := time.Now()
		nd, err := startNode(t, nodeFile(t, e, prefix))
		if err != nil {
			t.Fatal(err)
		}
		r := result{routes: n, load: time.Since(start), heap: heap() - min(before, heap())}
		var lat []time.Duration
		var ms0, ms1 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		cpu0, cpuOK := cpuTime()
		for i := range changes {
			start := time.Now()
			rev := put(t, cli, prefix+"/routes/r0007", routeJSON("r0007", "/r0007", "app", fmt.Sprintf("/%d", i)))
			waitRev(t, 10*time.Second, rev, nd)
			lat = append(lat, time.Since(start))
		}
		if cpu1, _ := cpuTime(); cpuOK {
			r.cpu = time.Duration(cpu1-cpu0) / time.Duration(changes)
		}
		runtime.ReadMemStats(&ms1)
		r.alloc = (ms1.TotalAlloc - ms0.TotalAlloc) / uint64(changes)
		slices.Sort(lat)
		r.change = lat[len(lat)/2]
		res = append(res, r)
		expectBody(t, "/r0007", fmt.Sprintf(`"/%d/r0007"`, changes-1), nd)
		nd.cancel()
	}
	for _, r := range res {
		t.Logf("%5d routes: load %v, heap held %.1f MiB, one route change (median of %d) %v, CPU per change %v, allocated per change %d KiB",
			r.routes, r.load, float64(r.heap)/(1<<20), changes, r.change, r.cpu, r.alloc>>10)
	}
	for _, r := range res[1:] {
		t.Logf("one change at %d routes costs %.1fx the one at %d in time, %.2fx in CPU (shared machine)", r.routes,
			float64(r.change)/float64(res[0].change), res[0].routes, float64(r.cpu)/float64(max(res[0].cpu, 1)))
	}
}

// scaleChanges is the number of route changes TestScale measures at each size:
// SLUICE_SCALE_CHANGES, or 100.
func scaleChanges(t *testing.T) int {
	v := os.Getenv("SLUICE_SCALE_CHANGES")
	if v == "" {
		return 100
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("SLUICE_SCALE_CHANGES=%q: want a number of changes", v)
	}
	return n
}

// scaleSizes are TestScale's numbers of routes: SLUICE_SCALE_ROUTES, or 100 and 1,000.
func scaleSizes(t *testing.T) []int {
	v := os.Getenv("SLUICE_SCALE_ROUTES")
	if v == "" {
		return []int{100, 1000}
	}
	var out []int
	for _, f := range strings.Split(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 8 {
			t.Fatalf("SLUICE_SCALE_ROUTES=%q: want numbers of routes (at least 8), comma-separated", v)
		}
		out = append(out, n)
	}
	return out
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
