package cluster_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/testutil"
)

// TestScale loads 100 and 1,000 routes from etcd and reports the time to load, the heap
// the node holds, and the cost of one route change: write to applied (median of 20), and
// the CPU time of this process (the node, its gateway and the test's client) per change,
// which the load of a shared machine disturbs less than wall time.
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
	}
	var res []result
	for _, n := range []int{100, 1000} {
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
		cpu0, cpuOK := cpuTime()
		for i := range 20 {
			start := time.Now()
			rev := put(t, cli, prefix+"/routes/r0007", routeJSON("r0007", "/r0007", "app", fmt.Sprintf("/%d", i)))
			waitRev(t, 10*time.Second, rev, nd)
			lat = append(lat, time.Since(start))
		}
		if cpu1, _ := cpuTime(); cpuOK {
			r.cpu = time.Duration(cpu1-cpu0) / 20
		}
		slices.Sort(lat)
		r.change = lat[len(lat)/2]
		res = append(res, r)
		expectBody(t, "/r0007", `"/19/r0007"`, nd)
		nd.cancel()
	}
	for _, r := range res {
		t.Logf("%5d routes: load %v, heap held %.1f MiB, one route change (median of 20) %v, CPU per change %v", r.routes, r.load, float64(r.heap)/(1<<20), r.change, r.cpu)
	}
	t.Logf("one change at 1000 routes costs %.1fx the one at 100 in time, %.1fx in CPU (shared machine)",
		float64(res[1].change)/float64(res[0].change), float64(res[1].cpu)/float64(max(res[0].cpu, 1)))
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
