package cluster_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"sluice/internal/cluster"
	"sluice/internal/testutil"
)

// TestWriteBetweenSnapshotAndWatch: a write that lands after a node read its snapshot and
// before its watch started reaches the node, because the watch starts at the revision after
// the snapshot's, not at etcd's current one. A hook writes in that gap, deterministically.
func TestWriteBetweenSnapshotAndWatch(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	be := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	put(t, cli, "/g/upstreams/app", upstreamJSON("app", be.Addr()))
	put(t, cli, "/g/routes/r", routeJSON("r", "/", "app", "/snapshot"))
	var (
		once sync.Once
		rev  = make(chan int64, 1)
	)
	cluster.SetBeforeWatch(func() {
		once.Do(func() {
			resp, err := cli.Put(context.Background(), "/g/routes/r", routeJSON("r", "/", "app", "/gap"))
			if err != nil {
				rev <- -1
				return
			}
			rev <- resp.Header.Revision
		})
	})
	t.Cleanup(func() { cluster.SetBeforeWatch(nil) })
	n, err := startNode(t, nodeFile(t, e, "/g"))
	if err != nil {
		t.Fatal(err)
	}
	gap := <-rev
	if gap < 0 {
		t.Fatal("the write in the gap failed")
	}
	if st := n.node.Status(); st.Revision >= gap {
		t.Fatalf("the snapshot (revision %d) already had the gap's write (%d): the hook ran too early", st.Revision, gap)
	}
	waitRev(t, 5*time.Second, gap, n)
	expectBody(t, "/x", `"/gap/x"`, n)
}
