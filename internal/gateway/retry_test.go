package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// flakyBackend fails each request id at most once, in the way its path asks, after recording
// that it processed it; the next attempt with the same id succeeds:
//
//	/reset   processes the request, then resets the connection without a response
//	/status  answers 503
//	/slow    answers after 400ms (beyond the test's per-try timeout)
//	/ok      answers 200
type flakyBackend struct {
	srv       *httptest.Server
	mu        sync.Mutex
	processed map[string]int
}

func newFlakyBackend(t *testing.T) *flakyBackend {
	fb := &flakyBackend{processed: map[string]int{}}
	fb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		id := r.Header.Get("X-Request-Id")
		fb.mu.Lock()
		fb.processed[id]++
		first := fb.processed[id] == 1
		fb.mu.Unlock()
		if first {
			switch r.URL.Path {
			case "/reset":
				conn, _, err := w.(http.Hijacker).Hijack()
				if err == nil {
					conn.(*net.TCPConn).SetLinger(0)
					conn.Close()
				}
				return
			case "/status":
				w.WriteHeader(503)
				io.WriteString(w, "busy")
				return
			case "/slow":
				time.Sleep(400 * time.Millisecond) // the failure under test, not synchronisation
			}
		}
		io.WriteString(w, "ok")
	}))
	t.Cleanup(fb.srv.Close)
	return fb
}

func (fb *flakyBackend) times(id string) int {
	fb.mu.Lock()
	defer fb.mu.Unlock()
	return fb.processed[id]
}

// TestRetryPolicy runs (method, idempotency key, route opt-in, failure point, budget) against
// backends that fail at each point on purpose, and checks whether the request was retried,
// the final status and reason, and how often the backend processed it.
func TestRetryPolicy(t *testing.T) {
	fb := newFlakyBackend(t)
	dead := testutil.RefusingAddr(t)
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: flaky
    targets: [{address: {{flaky}}}]
    retry:
      attempts: 2
      per_try_timeout: 150ms
      on: [connect_failure, reset_before_request, reset_before_response, timeout, status]
      backoff_base: 1ms
      backoff_max: 5ms
  - id: pair
    targets: [{address: {{dead}}}, {address: {{flaky}}}]
    retry: {backoff_base: 1ms, backoff_max: 5ms}
  - id: stingy
    targets: [{address: {{flaky}}}]
    retry: {budget_percent: 0, budget_min_per_second: 0, backoff_base: 1ms, backoff_max: 5ms}
routes:
  - id: optin
    match: {path_prefix: /optin/}
    upstream: flaky
    rewrite: {strip_prefix: /optin}
    retry: {non_idempotent: true}
  - id: noretry
    match: {path_prefix: /noretry/}
    upstream: flaky
    rewrite: {strip_prefix: /noretry}
    retry: {attempts: 1}
  - id: pair
    match: {path_prefix: /pair/}
    upstream: pair
    rewrite: {strip_prefix: /pair}
  - id: stingy
    match: {path_prefix: /stingy/}
    upstream: stingy
    rewrite: {strip_prefix: /stingy}
  - id: default
    upstream: flaky
`, map[string]string{"flaky": hostport(fb.srv), "dead": dead})

	cases := []struct {
		name      string
		method    string
		path      string
		key       bool
		status    int
		reason    string
		processed int // times the backend processed the request
	}{
		// Reset after the backend processed the request: only idempotent, keyed or opted-in
		// requests may be tried again.
		{name: "GET reset is retried", method: "GET", path: "/reset", status: 200, processed: 2},
		{name: "PUT reset is retried", method: "PUT", path: "/reset", status: 200, processed: 2},
		{name: "DELETE reset is retried", method: "DELETE", path: "/reset", status: 200, processed: 2},
		{name: "POST reset is not retried", method: "POST", path: "/reset", status: 502, reason: "upstream_reset_before_response", processed: 1},
		{name: "PATCH reset is not retried", method: "PATCH", path: "/reset", status: 502, reason: "upstream_reset_before_response", processed: 1},
		{name: "POST with idempotency key is retried", method: "POST", path: "/reset", key: true, status: 200, processed: 2},
		{name: "POST on opted-in route is retried", method: "POST", path: "/optin/reset", status: 200, processed: 2},
		{name: "GET with retries off fails", method: "GET", path: "/noretry/reset", status: 502, reason: "upstream_reset_before_response", processed: 1},
		// Retryable statuses.
		{name: "GET 503 is retried", method: "GET", path: "/status", status: 200, processed: 2},
		{name: "POST 503 is passed through", method: "POST", path: "/status", status: 503, processed: 1},
		{name: "GET 503 with retries off is passed through", method: "GET", path: "/noretry/status", status: 503, processed: 1},
		// Per-try timeout.
		{name: "GET per-try timeout is retried", method: "GET", path: "/slow", status: 200, processed: 2},
		{name: "POST per-try timeout is not retried", method: "POST", path: "/slow", status: 504, reason: "upstream_timeout", processed: 1},
		// Connect failure: nothing reached any backend, so any method goes to the next target.
		{name: "GET connect failure goes to the other target", method: "GET", path: "/pair/ok", status: 200, processed: 1},
		{name: "POST connect failure goes to the other target", method: "POST", path: "/pair/ok", status: 200, processed: 1},
		// Budget exhausted: the failure is returned with that reason.
		{name: "GET reset with no budget", method: "GET", path: "/stingy/reset", status: 503, reason: "retry_budget_exhausted", processed: 1},
	}
	c := newClient()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("retry-%d", i)
			var body io.Reader
			if tc.method != "GET" && tc.method != "DELETE" {
				body = strings.NewReader("payload")
			}
			resp := sendWithID(t, c, tc.method, tg.url(tc.path), body, id, tc.key)
			wantAnswer(t, resp, tc.status, tc.reason)
			if n := fb.times(id); n != tc.processed {
				t.Errorf("backend processed the request %d times, want %d", n, tc.processed)
			}
			// The invariant: a non-idempotent request without key or opt-in runs at most once.
			nonIdem := tc.method == "POST" || tc.method == "PATCH"
			if nonIdem && !tc.key && !strings.HasPrefix(tc.path, "/optin/") && fb.times(id) > 1 {
				t.Errorf("non-idempotent request processed %d times", fb.times(id))
			}
		})
	}
	// The access log explains each retry.
	lines := tg.accessLines(len(cases))
	found := false
	for _, l := range lines {
		if l["path"] == "/reset" && l["method"] == "GET" {
			tries, _ := l["tries"].([]any)
			if len(tries) == 2 && tries[0].(map[string]any)["retried_on"] == "reset_before_response" {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("access log does not show the GET /reset retry: %v", lines)
	}
}

// TestRetryTargetKilledMidLoad kills one of two targets (listener closed, connections reset)
// while a bounded client loop sends a GET/POST mix: no GET fails, no POST runs twice, and the
// number of failed POSTs is reported.
func TestRetryTargetKilledMidLoad(t *testing.T) {
	a := testutil.NewBackend(t, testutil.BackendOptions{Delay: 5 * time.Millisecond})
	b := testutil.NewBackend(t, testutil.BackendOptions{Delay: 5 * time.Millisecond})
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: two
    targets: [{address: {{a}}}, {address: {{b}}}]
    retry: {backoff_base: 1ms, backoff_max: 10ms, budget_min_per_second: 100}
routes: [{id: all, upstream: two}]
`, map[string]string{"a": a.Addr(), "b": b.Addr()})

	var gets, posts, failedGets, failedPosts atomic.Int64
	var seq atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				method := "GET"
				var body io.Reader
				if i%2 == w%2 {
					method, body = "POST", strings.NewReader("p")
				}
				req, _ := http.NewRequest(method, tg.url("/x"), body)
				req.Header.Set("X-Request-Id", fmt.Sprintf("k-%d", seq.Add(1)))
				resp, err := c.Do(req)
				ok := err == nil && resp.StatusCode == 200
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if method == "GET" {
					gets.Add(1)
					if !ok {
						failedGets.Add(1)
					}
				} else {
					posts.Add(1)
					if !ok {
						failedPosts.Add(1)
					}
				}
			}
		}()
	}
	// Kill a once the load is spread over both targets, and stop once as much has gone on
	// without it: what was in flight on a was cut, what came later found a refused.
	testutil.WaitFor(t, 5*time.Second, "load on a", func() bool { return a.Requests() >= 100 })
	a.Close()
	after := b.Requests() + 200
	testutil.WaitFor(t, 5*time.Second, "load on b after a was killed", func() bool { return b.Requests() >= after })
	close(stop)
	wg.Wait()
	dups := append(a.Duplicates(), b.Duplicates()...)
	t.Logf("%d GETs (%d failed), %d POSTs (%d failed), %d processed twice", gets.Load(), failedGets.Load(), posts.Load(), failedPosts.Load(), len(dups))
	if failedGets.Load() != 0 {
		t.Errorf("%d GETs failed", failedGets.Load())
	}
	if len(dups) != 0 {
		t.Errorf("requests processed twice: %v", dups)
	}
	if gets.Load() < 50 {
		t.Errorf("only %d GETs ran", gets.Load())
	}
}

// TestUpstreamTimeCoversEveryAttempt: the access log's upstream_ms spans all attempts, also
// when the last one fails before its exchange (here: a 503, a backoff, then a refused
// connect), so it cannot stop at the first attempt's end.
func TestUpstreamTimeCoversEveryAttempt(t *testing.T) {
	fb := newFlakyBackend(t)
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: pair
    targets: [{address: {{flaky}}, weight: 100}, {address: {{dead}}}]
    retry: {attempts: 2, on: [status, connect_failure], backoff_base: 400ms, backoff_max: 400ms}
routes: [{id: all, upstream: pair}]
`, map[string]string{"flaky": hostport(fb.srv), "dead": testutil.RefusingAddr(t)})
	resp, err := http.Get(tg.url("/status"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	l := tg.accessLines(1)[0]
	up, _ := l["upstream_ms"].(float64)
	total, _ := l["duration_ms"].(float64)
	if resp.StatusCode < 500 || l["target"] == nil {
		t.Fatalf("status %d, log %v: want a gateway 5xx after two attempts", resp.StatusCode, l)
	}
	// The backoff is a random wait in [0, 400 ms]: the two differ by microseconds when
	// upstream_ms covers it, by the backoff and the connect when it does not.
	if up < total-5 {
		t.Errorf("upstream_ms %.3f, duration_ms %.3f: upstream time stopped before the last attempt (log %v)", up, total, l)
	}
}
