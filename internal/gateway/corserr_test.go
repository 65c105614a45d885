package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestCORSOnGatewayErrors: on a route with cors, the answers the gateway makes when the
// upstream fails carry the route's CORS fields, exactly as a proxied response would, over
// HTTP/1.1 and HTTP/2 (h2c): 502 when both targets refuse (the retries exhausted), 504
// for a backend slower than timeouts.read. A browser script then reads the status and the JSON reason instead of failing with
// a CORS error. An origin that is not allowed gets none, and 404 no_route (no route, so no
// cors) gets none either: docs/plugins.md says why. Run with tracing off and on (the
// tracing wrapper of the hooks must pass the fields on).
func TestCORSOnGatewayErrors(t *testing.T) {
	const origin = "https://app.example"
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(func() { close(release); slow.Close() })
	ok := echoBackend(t, "ok")
	_, otlp := startOTLPHTTP(t)
	// With tracing on, the proxy's hooks are the tracing wrapper around the chain's: it
	// must pass the fields on.
	for _, tracing := range []string{"", "tracing: {endpoint: " + otlp + ", ratio: 1}\n"} {
		t.Run(map[bool]string{false: "plain", true: "traced"}[tracing != ""], func(t *testing.T) {
			tg := startGateway(t, tracing+`
listeners:
  - address: 127.0.0.1:0
    protocols: [http1, h2c]
upstreams:
  - id: dead
    targets: [{address: {{dead1}}}, {address: {{dead2}}}]
  - id: slow
    targets: [{address: {{slow}}}]
    timeouts: {read: 200ms}
  - id: ok
    targets: [{address: {{ok}}}]
routes:
  - id: dead
    match: {path_prefix: /dead/}
    upstream: dead
    plugins: [{name: cors, config: {allow_origins: ["`+origin+`"], expose_headers: [X-Sluice-Error], allow_credentials: true}}]
  - id: slow
    match: {path_prefix: /slow/}
    upstream: slow
    plugins: [{name: cors, config: {allow_origins: ["`+origin+`"], expose_headers: [X-Sluice-Error], allow_credentials: true}}]
  - id: ok
    match: {path_prefix: /ok/}
    upstream: ok
    plugins: [{name: cors, config: {allow_origins: ["`+origin+`"], expose_headers: [X-Sluice-Error], allow_credentials: true}}]
`, map[string]string{"dead1": testutil.RefusingAddr(t), "dead2": testutil.RefusingAddr(t), "slow": hostport(slow), "ok": hostport(ok)})

			for _, c := range []struct {
				name   string
				client *http.Client
				proto  int
			}{{"http1", newClient(), 1}, {"h2c", h2cClient(), 2}} {
				t.Run(c.name, func(t *testing.T) {
					for _, tc := range []struct {
						path, origin string
						status       int
						reason       string
						cors         bool
					}{
						{"/ok/x", origin, 200, "", true}, // the proxied response: what the errors must match
						{"/dead/x", origin, 502, "upstream_connect_refused", true},
						{"/slow/x", origin, 504, "upstream_timeout", true},
						{"/dead/x", "https://evil.example", 502, "upstream_connect_refused", false},
						{"/nothing", origin, 404, "no_route", false},
					} {
						req, _ := http.NewRequest("GET", tg.url(tc.path), nil)
						req.Header.Set("Origin", tc.origin)
						start := time.Now()
						resp, err := c.client.Do(req)
						if err != nil {
							t.Fatal(err)
						}
						body, _ := io.ReadAll(resp.Body)
						resp.Body.Close()
						if resp.ProtoMajor != c.proto || resp.StatusCode != tc.status || resp.Header.Get("X-Sluice-Error") != tc.reason {
							t.Errorf("%s from %s: %s %d %q, want HTTP/%d %d %q", tc.path, tc.origin, resp.Proto, resp.StatusCode,
								resp.Header.Get("X-Sluice-Error"), c.proto, tc.status, tc.reason)
							continue
						}
						if tc.status == 504 && time.Since(start) > 3*time.Second {
							t.Errorf("%s: the 504 took %v, want about timeouts.read (200ms)", tc.path, time.Since(start))
						}
						want := map[string]string{"Access-Control-Allow-Origin": "", "Access-Control-Allow-Credentials": "",
							"Access-Control-Expose-Headers": "", "Vary": "Origin"}
						if tc.cors {
							want["Access-Control-Allow-Origin"] = origin
							want["Access-Control-Allow-Credentials"] = "true"
							want["Access-Control-Expose-Headers"] = "X-Sluice-Error"
						}
						if tc.path == "/nothing" {
							want["Vary"] = ""
						}
						for name, v := range want {
							if got := resp.Header.Values(name); v == "" && len(got) != 0 || v != "" && (len(got) != 1 || got[0] != v) {
								t.Errorf("%s from %s (%d): %s %q, want %q", tc.path, tc.origin, tc.status, name, got, v)
							}
						}
						if tc.status >= 500 {
							var e struct {
								Error string `json:"error"`
							}
							if json.Unmarshal(body, &e) != nil || e.Error != tc.reason {
								t.Errorf("%s: body %q, want the JSON error %q", tc.path, body, tc.reason)
							}
						}
					}
				})
			}
			// The 502s came after the retry on the other target: the answer the browser could not
			// read before was the one made when the retries were exhausted.
			for _, l := range tg.accessLines(10) {
				if l["status"] == 502.0 && l["attempts"] != 2.0 {
					t.Errorf("a 502 after %v attempts, want 2 (both targets): %v", l["attempts"], l)
				}
			}

		})
	}
}
