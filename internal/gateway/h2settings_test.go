package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestH2UpstreamLoweredMaxStreams: an HTTP/2 backend that lowers MAX_CONCURRENT_STREAMS
// mid-connection (16 in its first SETTINGS, 2 in a second one sent when a connection's first
// stream arrives, refusing any stream beyond the limit it had acknowledged) is held to its
// latest word: bursts of GETs and POSTs through the gateway are all answered and run once,
// no stream goes beyond the lowered limit, and the admin view shows every connection's
// lowered limit.
func TestH2UpstreamLoweredMaxStreams(t *testing.T) {
	b, err := testutil.NewRacyH2(testutil.RacyH2Options{MaxConcurrentStreams: 16, LowerMaxStreams: 2,
		Delay: 20 * time.Millisecond, HeaderTableSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: racy
    targets: [{address: "{{backend}}"}]
    protocol: h2c
routes:
  - id: all
    upstream: racy
`, map[string]string{"backend": b.Addr()})
	c := newClient()
	get := func(id string, post bool) {
		var body io.Reader
		method := "GET"
		if post {
			method, body = "POST", strings.NewReader("body-"+id)
		}
		req, _ := http.NewRequest(method, tg.url("/r"), body)
		req.Header.Set("X-Test-Id", id)
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			return
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(got), "ok "+id+" ") {
			t.Errorf("%s %s: %d %q (%s)", method, id, resp.StatusCode, got, resp.Header.Get("X-Sluice-Error"))
		}
	}
	get("warm", false)
	var ids []string
	for round := range 4 {
		var wg sync.WaitGroup
		for i := range 12 {
			id := fmt.Sprintf("r%d-%d", round, i)
			ids = append(ids, id)
			wg.Go(func() { get(id, i%2 == 0) })
		}
		wg.Wait()
	}
	for _, id := range ids {
		if n := b.Processed(id); n != 1 {
			t.Errorf("%s processed %d times; want 1", id, n)
		}
	}
	if n := b.OverLimit.Load(); n != 0 {
		t.Errorf("%d streams went beyond the lowered limit the gateway had acknowledged", n)
	}
	if n := b.BadBodies.Load(); n != 0 {
		t.Errorf("%d POST bodies arrived wrong", n)
	}
	testutil.WaitFor(t, 5*time.Second, "every connection's lowered limit in the admin view", func() bool {
		ts, _ := adminView{tg.gw}.Targets("racy")
		if len(ts) != 1 || ts[0].H2 == nil || len(ts[0].H2.Conns) == 0 {
			return false
		}
		for _, ci := range ts[0].H2.Conns {
			if ci.MaxConcurrentStreams != 2 {
				return false
			}
		}
		return true
	})
	t.Logf("%d requests on %d connections, peak %d streams on one", len(ids)+1, b.Accepted.Load(), b.PeakStreams.Load())
}

// slowFirstWriteListener hands out connections whose first write (a TLS ServerHello) is
// held for delay: a backend whose handshake takes that long per connection.
type slowFirstWriteListener struct {
	net.Listener
	delay time.Duration
}

func (l slowFirstWriteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &slowFirstWriteConn{Conn: c, delay: l.delay}, nil
}

type slowFirstWriteConn struct {
	net.Conn
	delay time.Duration
	once  sync.Once
}

func (c *slowFirstWriteConn) Write(p []byte) (int, error) {
	c.once.Do(func() { time.Sleep(c.delay) })
	return c.Conn.Write(p)
}

// TestH2UpstreamWaitsByKind: at h2.max_conns 2 against a backend allowing one stream per
// connection, with a 300 ms TLS handshake, a burst of 6 requests on a one-connection pool
// dials one more connection; one request can wait for it (a dial wait), the others wait
// for a stream slot (slot waits), and sluice_upstream_h2_waits_total{for} says so. The
// requests that waited at max_conns while the dial was in progress used to be counted as
// dial waits too.
func TestH2UpstreamWaitsByKind(t *testing.T) {
	ca := testutil.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := testutil.ServeRacyH2(slowFirstWriteListener{ln, 300 * time.Millisecond}, testutil.RacyH2Options{
		TLS: ca.ServerConfig(t, "127.0.0.1"), MaxConcurrentStreams: 1, Delay: 150 * time.Millisecond, HeaderTableSize: -1})
	defer b.Close()
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: racy
    targets: [{address: "{{backend}}"}]
    protocol: h2
    tls: {ca_file: `+ca.CAFile(t)+`, server_name: 127.0.0.1}
    h2: {max_conns: 2}
routes:
  - id: all
    upstream: racy
admin: {address: "127.0.0.1:0"}
`, map[string]string{"backend": b.Addr()})
	c := newClient()
	get := func(id string) {
		req, _ := http.NewRequest("GET", tg.url("/r"), nil)
		req.Header.Set("X-Test-Id", id)
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Errorf("%s: %d (%s)", id, resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
		}
	}
	get("warm")
	var wg sync.WaitGroup
	for i := range 6 {
		wg.Go(func() { get(fmt.Sprint(i)) })
	}
	wg.Wait()
	ts, _ := adminView{tg.gw}.Targets("racy")
	k := ts[0].H2.Counters
	if k.Dials != 2 {
		t.Fatalf("%d dials; want 2 (max_conns)", k.Dials)
	}
	// One dial at most was on its way at a time, for one stream: at most one request can
	// have waited for it; every other wait was for a slot at max_conns.
	if k.DialWaits > 1 || k.SlotWaits == 0 {
		t.Errorf("%d dial waits, %d slot waits; want at most 1 dial wait (one dial of a one-stream connection) and slot waits", k.DialWaits, k.SlotWaits)
	}
	f, _ := scrape(t, tg.adminURL("/metrics"))
	for kind, want := range map[string]int64{"dial": k.DialWaits, "slot": k.SlotWaits} {
		if v, _ := f.value("sluice_upstream_h2_waits_total", map[string]string{"upstream": "racy", "for": kind}); v != float64(want) {
			t.Errorf("sluice_upstream_h2_waits_total{for=%q} = %v; want %d", kind, v, want)
		}
	}
	t.Logf("counters %+v", k)
}
