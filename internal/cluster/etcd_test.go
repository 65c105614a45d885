package cluster_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"sluice/internal/cluster"
	"sluice/internal/config"
	"sluice/internal/gateway"
	"sluice/internal/testutil"
)

// The tests run a real etcd (testutil.StartEtcd): Debian's etcd-server package.

// etcdServer is a test's etcd.
type etcdServer struct{ *testutil.Etcd }

func startEtcd(t *testing.T) *etcdServer { return &etcdServer{testutil.StartEtcd(t)} }

// Client returns a client of e, closed at the end of the test.
func (e *etcdServer) Client(t *testing.T) *clientv3.Client {
	t.Helper()
	cli, err := cluster.NewClient(&config.Cluster{Endpoints: []string{e.URL}, DialTimeout: ptr(config.Duration(2 * time.Second))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

func ptr[T any](v T) *T { return &v }

// testNode is one gateway in cluster mode.
type testNode struct {
	gw     *gateway.Gateway
	node   *cluster.Node
	file   string
	addr   string // client listener
	cancel context.CancelFunc
	logs   *lockedBuffer
}

// lockedBuffer is a log destination safe for concurrent writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// nodeFile writes a node's file: a client listener, an admin listener and the cluster block.
func nodeFile(t *testing.T, e *etcdServer, prefix string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "node.yaml")
	data := fmt.Sprintf(`listeners:
  - address: 127.0.0.1:0
admin:
  address: 127.0.0.1:0
log:
  access: "off"
cluster:
  endpoints: [%q]
  prefix: %s
  dial_timeout: 1s
`, e.URL, prefix)
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// startNode starts a gateway on the node file, as `sluice run` does in cluster mode.
func startNode(t *testing.T, file string) (*testNode, error) {
	t.Helper()
	n := &testNode{file: file}
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(file, data)
	if err != nil {
		t.Fatal(err)
	}
	local, err := cluster.ReadLocal(file, data)
	if err != nil {
		t.Fatal(err)
	}
	n.logs = &lockedBuffer{}
	var out io.Writer = n.logs
	if testing.Verbose() {
		out = io.MultiWriter(n.logs, os.Stderr)
	}
	log := slog.New(slog.NewTextHandler(out, nil))
	n.gw = gateway.New(log, nil)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	n.node, err = cluster.Start(ctx, cluster.Options{Local: local, Cluster: cfg.Cluster, Apply: n.gw.Apply, ApplyChange: n.gw.ApplyChange,
		Log: log, Metrics: n.gw.Metrics().Cluster(), ProbeInterval: 200 * time.Millisecond, BackoffMax: time.Second})
	if err != nil {
		cancel()
		return nil, err
	}
	n.gw.SetCluster(n.node)
	for _, a := range n.gw.Addrs() {
		n.addr = a.String()
	}
	t.Cleanup(func() {
		cancel()
		sctx, c := context.WithTimeout(context.Background(), 5*time.Second)
		defer c()
		n.gw.Shutdown(sctx)
	})
	return n, nil
}

// get sends GET path to the node and returns the status and body.
func (n *testNode) get(t testing.TB, c *http.Client, path string) (int, string, error) {
	resp, err := c.Get("http://" + n.addr + path)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func (n *testNode) admin() string { return "http://" + n.gw.AdminAddr().String() }

// put writes one object directly to etcd (as etcdctl would) and returns the revision.
func put(t testing.TB, cli *clientv3.Client, key, value string) int64 {
	t.Helper()
	resp, err := cli.Put(context.Background(), key, value)
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// waitRev waits until every node serves revision rev or newer.
func waitRev(t testing.TB, d time.Duration, rev int64, nodes ...*testNode) {
	t.Helper()
	testutil.WaitFor(t, d, fmt.Sprintf("every node at revision %d", rev), func() bool {
		for _, n := range nodes {
			if n.node.Status().Revision < rev {
				return false
			}
		}
		return true
	})
}

func upstreamJSON(id, addr string) string {
	return fmt.Sprintf(`{"id":%q,"targets":[{"address":%q}]}`, id, addr)
}

func routeJSON(id, prefix, upstream, addPrefix string) string {
	return fmt.Sprintf(`{"id":%q,"match":{"path_prefix":%q},"upstream":%q,"rewrite":{"add_prefix":%q}}`, id, prefix, upstream, addPrefix)
}

// cutProxy forwards TCP to etcd until Cut, which closes every connection and refuses new
// ones until Heal: a network partition between one node and etcd, while etcd runs on.
type cutProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]bool
}

func newCutProxy(t *testing.T, target string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{ln: ln, target: target, conns: map[net.Conn]bool{}}
	t.Cleanup(func() { ln.Close(); p.Cut() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			if p.cut {
				p.mu.Unlock()
				c.Close()
				continue
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				p.mu.Unlock()
				c.Close()
				continue
			}
			p.conns[c], p.conns[up] = true, true
			p.mu.Unlock()
			go func() { io.Copy(up, c); up.Close() }()
			go func() { io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *cutProxy) URL() string { return "http://" + p.ln.Addr().String() }

// Cut closes every forwarded connection and refuses new ones.
func (p *cutProxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
}

// Heal accepts connections again.
func (p *cutProxy) Heal() {
	p.mu.Lock()
	p.cut = false
	p.mu.Unlock()
}

// nodeFileURL is nodeFile with another etcd URL (a cutProxy's).
func nodeFileURL(t *testing.T, url, prefix string) string {
	t.Helper()
	return nodeFile(t, &etcdServer{&testutil.Etcd{URL: url}}, prefix)
}

// load sends GETs to every node from a few keep-alive clients until stop is closed, and
// returns the number sent and the failures (a transport error or a status other than 200).
func load(nodes []*testNode, path string, stop <-chan struct{}) (func() (int64, []string), *sync.WaitGroup) {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		sent  int64
		fails []string
	)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := &http.Client{Timeout: 10 * time.Second}
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				n := nodes[(i+j)%len(nodes)]
				status, body, err := n.get(nil, c, path)
				mu.Lock()
				sent++
				if err != nil || status != 200 {
					fails = append(fails, fmt.Sprintf("node %s: status %d err %v body %.200s", n.addr, status, err, body))
				}
				mu.Unlock()
			}
		}()
	}
	return func() (int64, []string) {
		mu.Lock()
		defer mu.Unlock()
		return sent, slices.Clone(fails)
	}, &wg
}

// metricValue returns the value of an unlabelled metric from the node's /metrics.
func metricValue(t *testing.T, n *testNode, name string) string {
	t.Helper()
	resp, err := http.Get(n.admin() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			return v
		}
	}
	return ""
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func writeFile(t *testing.T, name, data string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
}
