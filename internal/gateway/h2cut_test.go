package gateway

import (
	"bytes"
	"io"
	"strings"
	"sync"
	"testing"
)

// h2CutYAML routes everything to an h2c backend {{backend}}; GET and POST are retried on
// reset_before_response (POST not: non_idempotent is off).
const h2CutYAML = `
listeners:
  - address: 127.0.0.1:0
    protocols: [http1, h2c]
upstreams:
  - id: b
    targets: [{address: "{{backend}}"}]
    protocol: h2c
    retry: {attempts: 3, on: [reset_before_response], backoff_base: 1ms, backoff_max: 2ms}
routes:
  - id: all
    upstream: b
admin: {address: "127.0.0.1:0"}
`

// TestH2UpstreamCutMidBody: an HTTP/2 backend (cutBackend) answers a head and the start of
// a body, then resets the stream (RST_STREAM), closes its connection, ends the body short
// of its content-length, or sends HEADERS on a server-initiated stream (2). The access log
// and sluice_gateway_errors_total name a reset or a lost connection
// upstream_reset_during_response, as the HTTP/1.1 path names a connection cut mid-body,
// and the two faults of the backend's own making upstream_bad_response. Whatever the
// reason, the client (HTTP/1.1 and h2c) gets a prefix of the body and a read error, never
// a clean end: its connection is closed, or its stream reset.
func TestH2UpstreamCutMidBody(t *testing.T) {
	tg := startGateway(t, h2CutYAML, map[string]string{"backend": cutBackend(t, func(string) []byte { return []byte("hello") })})
	clients := webClients()
	want := map[string]string{
		"/rst":   "upstream_reset_during_response",
		"/close": "upstream_reset_during_response",
		"/short": "upstream_bad_response",
		"/even":  "upstream_bad_response",
	}
	counts := map[string]int{}
	n := 0
	for _, client := range []string{"http1", "h2c"} {
		for _, path := range []string{"/rst", "/close", "/short", "/even"} {
			t.Run(client+path, func(t *testing.T) {
				resp, body, rerr := fetchReq(t, clients[client], mustRequest(t, tg.url(path)))
				n++
				counts[want[path]]++
				if resp.StatusCode != 200 || rerr == nil || !bytes.HasPrefix([]byte("hello"), body) {
					t.Errorf("got %d, body %q, read error %v; want 200, a prefix of %q, then a read error (not a clean end)", resp.StatusCode, body, rerr, "hello")
				}
				l := tg.accessLines(n)[n-1]
				if l["reason"] != want[path] || l["path"] != path {
					t.Errorf("access log: reason %v path %v; want %s %s", l["reason"], l["path"], want[path], path)
				}
			})
		}
	}
	f, _ := scrape(t, tg.adminURL("/metrics"))
	for code, want := range counts {
		if v, _ := f.value("sluice_gateway_errors_total", map[string]string{"reason": code}); v != float64(want) {
			t.Errorf("sluice_gateway_errors_total{reason=%s} = %v; want %d", code, v, want)
		}
	}
}

// TestH2UpstreamProtocolErrorRetry: a backend that sends HEADERS on a server-initiated
// stream (2) instead of its answer breaks the protocol on the connection: Sluice sends
// GOAWAY and the request fails upstream_bad_response, but is retried as a connection lost
// before the response (the backend may not have run it): a GET three times (the route's
// attempts), a POST once (non_idempotent is off).
func TestH2UpstreamProtocolErrorRetry(t *testing.T) {
	var mu sync.Mutex
	runs := map[string]int{}
	backend := cutBackend(t, func(path string) []byte {
		mu.Lock()
		runs[path]++
		mu.Unlock()
		return []byte("hello")
	})
	tg := startGateway(t, h2CutYAML, map[string]string{"backend": backend})
	for i, tc := range []struct {
		method string
		runs   int
	}{{"GET", 3}, {"POST", 1}} {
		t.Run(tc.method, func(t *testing.T) {
			path := "/" + strings.ToLower(tc.method) + "/even-first"
			req := mustRequest(t, tg.url(path))
			req.Method = tc.method
			if tc.method == "POST" {
				req.Body, req.ContentLength = io.NopCloser(strings.NewReader("hello")), 5
			}
			resp, body, _ := fetchReq(t, newClient(), req)
			if resp.StatusCode != 502 || !bytes.Contains(body, []byte("upstream_bad_response")) {
				t.Errorf("got %d %q; want 502 upstream_bad_response", resp.StatusCode, body)
			}
			l := tg.accessLines(i + 1)[i]
			if l["reason"] != "upstream_bad_response" || l["attempts"] != float64(tc.runs) {
				t.Errorf("access log: reason %v, attempts %v; want upstream_bad_response, %d", l["reason"], l["attempts"], tc.runs)
			}
			mu.Lock()
			defer mu.Unlock()
			if runs[path] != tc.runs {
				t.Errorf("the backend got the %s %d times; want %d", tc.method, runs[path], tc.runs)
			}
		})
	}
}
