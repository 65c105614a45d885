package cluster_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// failNone stops the load and fails t when any request failed or too few were sent.
func failNone(t *testing.T, stop chan struct{}, done func() (int64, []string), wait func(), least int64) {
	t.Helper()
	close(stop)
	wait()
	sent, fails := done()
	t.Logf("%d requests under load, %d failed", sent, len(fails))
	if len(fails) > 0 {
		t.Fatalf("%d of %d requests failed, first: %s", len(fails), sent, strings.Join(fails[:min(3, len(fails))], "; "))
	}
	if sent < least {
		t.Fatalf("only %d requests sent: the load did not run", sent)
	}
}

// TestChangeUnderLoad: routes and upstreams change while three nodes serve a steady load;
// no request fails, and the nodes applied the changes object by object.
func TestChangeUnderLoad(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	a := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	b := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	put(t, cli, "/u/upstreams/a", upstreamJSON("a", a.Addr()))
	put(t, cli, "/u/upstreams/b", upstreamJSON("b", b.Addr()))
	put(t, cli, "/u/routes/r", routeJSON("r", "/", "a", "/0"))
	nodes := startNodes(t, e, "/u", 3)

	stop := make(chan struct{})
	done, wg := load(nodes, "/x", stop)
	var rev int64
	for i := 1; i <= 40; i++ {
		up := []string{"a", "b"}[i%2]
		switch i % 4 {
		case 0, 1: // the route moves to the other upstream
			rev = put(t, cli, "/u/routes/r", routeJSON("r", "/", up, fmt.Sprintf("/%d", i)))
		case 2: // an upstream's settings change (its pools are rebuilt)
			rev = put(t, cli, "/u/upstreams/"+up, fmt.Sprintf(`{"id":%q,"targets":[{"address":%q}],"keepalive":{"max_idle":%d}}`, up, map[string]string{"a": a.Addr(), "b": b.Addr()}[up], 10+i))
		case 3: // a route is added and removed
			rev = put(t, cli, "/u/routes/extra", routeJSON("extra", "/extra", up, ""))
			if _, err := cli.Delete(context.Background(), "/u/routes/extra"); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	waitRev(t, 5*time.Second, rev, nodes...)
	failNone(t, stop, done, wg.Wait, 100)
	for _, n := range nodes {
		// The changes went the object-by-object way (gateway.ApplyChange), not all whole.
		if got := n.node.Incremental(); got < 20 {
			t.Errorf("node %s applied %d of the changes object by object, want most of them", n.addr, got)
		}
	}
}

// TestEtcdRestartUnderLoad: etcd stops and starts again while three nodes serve a steady
// load: no request fails, /admin/status and the metrics say etcd is down meanwhile, and
// the changes written before the stop and after the restart all reach every node.
func TestEtcdRestartUnderLoad(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	be := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	put(t, cli, "/r/upstreams/app", upstreamJSON("app", be.Addr()))
	put(t, cli, "/r/routes/r", routeJSON("r", "/", "app", "/before"))
	nodes := startNodes(t, e, "/r", 3)

	stop := make(chan struct{})
	done, wg := load(nodes, "/x", stop)
	before := put(t, cli, "/r/routes/last", routeJSON("last", "/last", "app", "/before-stop"))
	e.Stop()
	testutil.WaitFor(t, 5*time.Second, "every node to report etcd down", func() bool {
		for _, n := range nodes {
			if n.node.Status().EtcdUp {
				return false
			}
		}
		return true
	})
	if got := metricValue(t, nodes[0], "sluice_cluster_etcd_up"); got != "0" {
		t.Errorf("sluice_cluster_etcd_up = %q while etcd is down", got)
	}
	start := time.Now()
	if r := call(t, nodes[0], "PUT", "/admin/routes/r", routeJSON("r", "/", "app", "/lost")); r.status != 503 || r.body["error"] != "etcd_unavailable" {
		t.Errorf("write with etcd down: %d %s", r.status, r.raw)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Errorf("write with etcd down took %v", d)
	}
	e.Start()
	after := put(t, e.Client(t), "/r/routes/r", routeJSON("r", "/", "app", "/after"))
	waitRev(t, 15*time.Second, after, nodes...)
	failNone(t, stop, done, wg.Wait, 100)
	expectBody(t, "/x", `"/after/x"`, nodes...)
	expectBody(t, "/last", `"/before-stop/last"`, nodes...)
	for _, n := range nodes {
		if st := n.node.Status(); !st.EtcdUp || st.Revision < before {
			t.Errorf("node %s after the restart: %+v", n.addr, st)
		}
	}
}

// TestCompactionDiff: a node cut off from etcd while its watched revision is compacted
// reads a fresh snapshot when it is back, and applies it as a diff: the pooled connection
// to an upstream that did not change survives (no new connection to its backend).
func TestCompactionDiff(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	kept := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	other := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	put(t, cli, "/k/upstreams/kept", upstreamJSON("kept", kept.Addr()))
	put(t, cli, "/k/upstreams/other", upstreamJSON("other", other.Addr()))
	put(t, cli, "/k/routes/kept", routeJSON("kept", "/kept", "kept", ""))
	put(t, cli, "/k/routes/other", routeJSON("other", "/other", "other", "/v1"))
	proxy := newCutProxy(t, strings.TrimPrefix(e.URL, "http://"))
	n, err := startNode(t, nodeFileURL(t, proxy.URL(), "/k"))
	if err != nil {
		t.Fatal(err)
	}
	expectBody(t, "/kept", `"/kept"`, n) // one pooled connection to kept
	if got := kept.Accepted(); got != 1 {
		t.Fatalf("kept backend accepted %d connections, want 1", got)
	}
	snaps := n.node.Status().Snapshots

	proxy.Cut()
	var rev int64
	for i := 2; i <= 5; i++ {
		rev = put(t, cli, "/k/routes/other", routeJSON("other", "/other", "other", fmt.Sprintf("/v%d", i)))
	}
	if _, err := cli.Compact(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	proxy.Heal()
	waitRev(t, 15*time.Second, rev, n)
	st := n.node.Status()
	if st.Snapshots <= snaps || st.WatchRestarts == 0 {
		t.Fatalf("status %+v: want a new snapshot after the compaction (had %d)", st, snaps)
	}
	expectBody(t, "/other", `"/v5/other"`, n)
	expectBody(t, "/kept", `"/kept"`, n)
	if got := kept.Accepted(); got != 1 {
		t.Errorf("kept backend accepted %d connections after the snapshot: its pool was rebuilt, want it kept", got)
	}
}
