package cluster_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestConverge: three nodes load the state in etcd, then each follows a change.
func TestConverge(t *testing.T) {
	e := startEtcd(t)
	cli := e.Client(t)
	be := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	put(t, cli, "/c/upstreams/app", upstreamJSON("app", be.Addr()))
	put(t, cli, "/c/routes/r", routeJSON("r", "/", "app", "/v1"))
	var nodes []*testNode
	for range 3 {
		n, err := startNode(t, nodeFile(t, e, "/c"))
		if err != nil {
			t.Fatal(err)
		}
		nodes = append(nodes, n)
	}
	c := &http.Client{Timeout: 5 * time.Second}
	for _, n := range nodes {
		if _, body, err := n.get(t, c, "/x"); err != nil || !strings.Contains(body, `"/v1/x"`) {
			t.Fatalf("node %s: %v %s", n.addr, err, body)
		}
	}
	rev := put(t, cli, "/c/routes/r", routeJSON("r", "/", "app", "/v2"))
	waitRev(t, 5*time.Second, rev, nodes...)
	for _, n := range nodes {
		if _, body, err := n.get(t, c, "/x"); err != nil || !strings.Contains(body, `"/v2/x"`) {
			t.Fatalf("node %s after the change: %v %s", n.addr, err, body)
		}
	}
}
