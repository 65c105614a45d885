package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// stuckBackend reads each request and then never finishes answering: with partial set it
// sends a response head and part of a body first. arrived receives once per request read.
func stuckBackend(t *testing.T, partial bool, arrived chan<- string) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		req, err := http.ReadRequest(bufio.NewReader(c))
		if err != nil {
			return
		}
		if partial {
			io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nfirst bytes")
		}
		arrived <- req.URL.Path
		io.Copy(io.Discard, c) // until the gateway closes the connection
	})
}

// TestForcedShutdownIsBoundedByGrace: requests stuck upstream (waiting for a response head,
// in the middle of a response body, queued for a pool connection, in a retry backoff) do
// not hold Shutdown past its grace period: their contexts are canceled, their upstream waits
// interrupted, and each is logged with the reason gateway_shutting_down. Before request
// contexts, a silent backend with an 8 s read timeout held a 1 s Shutdown for 8.05 s.
func TestForcedShutdownIsBoundedByGrace(t *testing.T) {
	arrived := make(chan string, 8)
	silent := stuckBackend(t, false, arrived)
	partial := stuckBackend(t, true, arrived)
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: silent
    targets: [{address: {{silent}}}]
    timeouts: {read: 8s}
    keepalive: {max_conns: 1, queue_timeout: 30s}
    retry: {attempts: 1}
  - id: partial
    targets: [{address: {{partial}}}]
    timeouts: {read: 8s}
  - id: refused
    targets: [{address: {{refused}}}]
    retry: {attempts: 10, backoff_base: 20s, backoff_max: 20s, budget_min_per_second: 100}
routes:
  - {id: silent, match: {path_prefix: /silent}, upstream: silent}
  - {id: partial, match: {path_prefix: /partial}, upstream: partial}
  - {id: refused, match: {path_prefix: /refused}, upstream: refused}
`, map[string]string{"silent": silent, "partial": partial, "refused": testutil.RefusingAddr(t)})

	var wg sync.WaitGroup
	get := func(path string) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := newClient().Get(tg.url(path)); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	get("/silent/head")     // waits for a response head
	get("/partial/body")    // waits in the middle of a body
	get("/refused/backoff") // sleeps between connect attempts
	for range 2 {
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("requests did not reach the backends")
		}
	}
	// The refused request must be in its backoff before the shutdown: on a loaded machine its
	// goroutine had not yet sent it once, and the closed listener left it without a line.
	testutil.WaitFor(t, 5*time.Second, "a connect refused before the backoff", func() bool {
		return tg.gw.Current().Upstreams["refused"].Current().Targets[0].Pool.Snapshot().Counters.DialErrors >= 1
	})
	get("/silent/queued") // the silent upstream's only connection is taken: queued
	testutil.WaitFor(t, 5*time.Second, "a request queued for the pool", func() bool {
		return tg.gw.Current().Upstreams["silent"].Current().Targets[0].Pool.Snapshot().Waiting == 1
	})

	forceShutdown(t, tg.gw)
	wg.Wait()
	lines := tg.accessLines(4)
	for _, l := range lines {
		if l["reason"] != "gateway_shutting_down" {
			t.Errorf("%v logged with reason %v (status %v, error %v), want gateway_shutting_down", l["path"], l["reason"], l["status"], l["error"])
		}
		if e, _ := l["error"].(string); !strings.Contains(e, "grace period") {
			t.Errorf("%v: error %q does not say why", l["path"], e)
		}
	}
}

// TestH2ForcedShutdownCancelsStreams: streams of one HTTP/2 connection stuck upstream are
// canceled when Shutdown's grace period ends, as HTTP/1.1 requests are (above): Shutdown
// returns within the bound and each stream is logged with gateway_shutting_down. A
// stream's context is not a child of its connection's (server.Stream.initOwn): it learns
// of the shutdown from the connection's end.
func TestH2ForcedShutdownCancelsStreams(t *testing.T) {
	arrived := make(chan string, 8)
	silent := stuckBackend(t, false, arrived)
	s := startH2Routes(t, `
upstreams:
  - id: silent
    targets: [{address: `+silent+`}]
    timeouts: {read: 8s}
routes: [{id: all, upstream: silent}]
`)
	c := s.client()
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Go(func() {
			if resp, err := c.Get(s.url("/stuck/" + string(rune('a'+i)))); err == nil {
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	for range 3 {
		select {
		case <-arrived:
		case <-time.After(5 * time.Second):
			t.Fatal("the streams did not reach the backend")
		}
	}
	forceShutdown(t, s.gw)
	wg.Wait()
	for _, l := range s.accessLines(3) {
		if l["reason"] != "gateway_shutting_down" || l["http_version"] != "HTTP/2" {
			t.Errorf("%v logged as %v with reason %v (status %v, error %v), want HTTP/2 and gateway_shutting_down",
				l["path"], l["http_version"], l["reason"], l["status"], l["error"])
		}
	}
}

// forceShutdown shuts gw down with a 500 ms grace period while requests are stuck: Shutdown
// must report that it cut them and return within the grace plus 1 s. Cancellation wakes
// every wait at once; the margin over the grace is for a starved -race run in CI (878 ms
// once). Without the bound the waits last 8-30 s.
func forceShutdown(t *testing.T, gw *Gateway) {
	t.Helper()
	const grace = 500 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	start := time.Now()
	err := gw.Shutdown(ctx)
	took := time.Since(start)
	if err == nil {
		t.Errorf("Shutdown returned nil; want the grace context's error (requests were cut)")
	}
	if took > grace+time.Second {
		t.Fatalf("Shutdown took %v with a %v grace period", took, grace)
	}
}
