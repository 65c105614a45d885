package gateway

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/protobuf/proto"

	"sluice/internal/testutil"
	"sluice/internal/upstream"
)

// grpcWebErrorsYAML has grpc_web routes to a grpc-go backend (200ms read timeout), to a
// dead upstream, to an upstream whose active check finds its target down, with a 16-byte
// body limit and behind key-auth, no catch-all route, and the admin listener for /metrics.
const grpcWebErrorsYAML = `
listeners:
  - address: 127.0.0.1:0
    protocols: [http1, h2c]
upstreams:
  - id: grpc
    targets: [{address: "{{backend}}"}]
    protocol: h2c
  - id: dead
    targets: [{address: "{{dead}}"}]
    protocol: h2c
  - id: unhealthy
    targets: [{address: "{{dead}}"}]
    protocol: h2c
    health_check:
      active: {type: tcp, interval: 50ms, timeout: 50ms, unhealthy_threshold: 1}
      panic_threshold: 0
consumers:
  - name: alice
    credentials:
      key-auth:
        keys: ["alice-key-0123456789"]
routes:
  - id: web
    match: {path_prefix: /grpc.testing.TestService/}
    upstream: grpc
    grpc_web: true
    timeouts: {read: 200ms}
  - id: down
    match: {path_prefix: /down.Service/}
    upstream: dead
    grpc_web: true
  - id: unhealthy
    match: {path_prefix: /unhealthy.Service/}
    upstream: unhealthy
    grpc_web: true
  - id: big
    match: {path_prefix: /big.Service/}
    upstream: grpc
    grpc_web: true
    max_body_bytes: 16
  - id: locked
    match: {path_prefix: /locked.Service/}
    upstream: grpc
    grpc_web: true
    plugins:
      - name: key-auth
admin:
  address: 127.0.0.1:0
`

// TestGRPCWebGatewayErrors: the gateway's own errors towards a grpc-web client (no route,
// upstream down, no healthy target, the route's read timeout, a body too large, a key-auth
// denial) are grpc-web answers over HTTP/1.1 and h2c, for application/grpc-web+proto and
// application/grpc-web-text (a parameter and upper case in the request's content-type too):
// status 200, the request's content-type, grpc-status (as for gRPC) and grpc-message (the
// reason code) in the head, X-Sluice-Error, no body; key-auth's challenge and a 503's
// Retry-After are kept. The access log records the gateway's HTTP status and reason, not
// 200, and so does sluice_requests_total's code class. A plain request still gets the JSON
// error with its HTTP status. The timeout is the route's, not grpc-timeout: with that, the
// backend's own deadline could answer DEADLINE_EXCEEDED first under load.
func TestGRPCWebGatewayErrors(t *testing.T) {
	be := &grpcBackend{done: make(chan error, 8)}
	tg := startGateway(t, grpcWebErrorsYAML, map[string]string{"backend": grpcServe(t, be), "dead": testutil.RefusingAddr(t)})
	clients := webClients()
	sleep, _ := proto.Marshal(&testgrpc.SimpleRequest{ResponseSize: -1}) // the backend waits for the call's end
	sleepBody := webFrameBytes(0, string(sleep))
	cases := []struct {
		name, path string
		body       []byte
		grpc       string // grpc-status
		status     int    // the gateway's HTTP status, in the access log
		reason     string
	}{
		{name: "no route", path: "/other.Service/Call", grpc: "12", status: 404, reason: "no_route"},
		{name: "upstream down", path: "/down.Service/Call", grpc: "14", status: 502, reason: "upstream_connect_refused"},
		{name: "timeout", path: "/grpc.testing.TestService/UnaryCall", body: sleepBody, grpc: "4", status: 504, reason: "upstream_timeout"},
		{name: "key-auth", path: "/locked.Service/Call", grpc: "16", status: 401, reason: "auth_credentials_missing"},
		{name: "no healthy target", path: "/unhealthy.Service/Call", grpc: "14", status: 503, reason: "no_healthy_target"},
		{name: "body too large", path: "/big.Service/Call", body: make([]byte, 64), grpc: "8", status: 413, reason: "request_body_too_large"},
	}
	testutil.WaitFor(t, 5*time.Second, "the unhealthy upstream's target to be found down", func() bool {
		return tg.gw.Current().Upstreams["unhealthy"].Current().Targets[0].Health().State == upstream.StateUnhealthy
	})
	types := []struct{ send, want string }{
		{"application/grpc-web+proto", "application/grpc-web+proto"},
		{"application/grpc-web-text", "application/grpc-web-text"},
		{"Application/gRPC-Web-Text+proto; charset=utf-8", "application/grpc-web-text+proto"},
	}
	n := 0
	for _, client := range []string{"http1", "h2c"} {
		for _, ct := range types {
			for _, tc := range cases {
				body := tc.body
				if body == nil {
					body = []byte{0, 0, 0, 0, 0}
				}
				if strings.Contains(ct.want, "text") {
					body = []byte(base64.StdEncoding.EncodeToString(body))
				}
				t.Run(client+"/"+ct.send+"/"+tc.name, func(t *testing.T) {
					resp, raw, _ := webPost(t, clients[client], tg.url(tc.path), ct.send, body)
					n++
					if want := map[string]int{"http1": 1, "h2c": 2}[client]; resp.ProtoMajor != want {
						t.Errorf("answered over HTTP/%d; want %d", resp.ProtoMajor, want)
					}
					h := resp.Header
					if resp.StatusCode != 200 || h.Get("Content-Type") != ct.want || h.Get("Grpc-Status") != tc.grpc ||
						!strings.HasPrefix(h.Get("Grpc-Message"), tc.reason) || h.Get("X-Sluice-Error") != tc.reason || len(raw) != 0 {
						t.Fatalf("got %d %q grpc-status %q grpc-message %q reason %q body %q; want 200 %q grpc-status %s grpc-message %s, no body",
							resp.StatusCode, h.Get("Content-Type"), h.Get("Grpc-Status"), h.Get("Grpc-Message"), h.Get("X-Sluice-Error"), raw, ct.want, tc.grpc, tc.reason)
					}
					if tc.reason == "upstream_timeout" {
						select { // the gateway ended the backend's call (RST_STREAM) when it gave up
						case <-be.done:
						case <-time.After(3 * time.Second):
							t.Error("the backend's call did not end after the deadline")
						}
					}
					if tc.status == 503 && h.Get("Retry-After") != "1" {
						t.Errorf("Retry-After %q; want 1", h.Get("Retry-After"))
					}
					if tc.status == 401 && !strings.HasPrefix(h.Get("Www-Authenticate"), "Key") {
						t.Errorf("WWW-Authenticate %q; want key-auth's challenge", h.Get("Www-Authenticate"))
					}
					l := tg.accessLines(n)[n-1]
					if l["status"] != float64(tc.status) || l["reason"] != tc.reason || l["path"] != tc.path || fmt.Sprint(l["grpc_status"]) != tc.grpc {
						t.Errorf("access log: status %v reason %v path %v grpc_status %v; want %d %s %s %s", l["status"], l["reason"], l["path"], l["grpc_status"], tc.status, tc.reason, tc.path, tc.grpc)
					}
				})
			}
		}
	}
	t.Run("plain client", func(t *testing.T) {
		for client, c := range clients {
			req, _ := http.NewRequest("POST", tg.url("/other.Service/Call"), strings.NewReader("{}"))
			req.Header.Set("Content-Type", "application/json")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 404 || resp.Header.Get("Grpc-Status") != "" || resp.Header.Get("Content-Type") != "application/json" ||
				!strings.Contains(string(raw), `"error":"no_route"`) {
				t.Errorf("%s: %d %q grpc-status %q body %q; want the JSON 404", client, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Grpc-Status"), raw)
			}
		}
	})
	want := map[string]float64{"2xx": 0, "4xx": 2, "5xx": 0} // 2: the plain clients' 404s
	for _, tc := range cases {
		want[fmt.Sprintf("%dxx", tc.status/100)] += float64(len(clients) * len(types))
	}
	f, _ := scrape(t, tg.adminURL("/metrics"))
	for class, want := range want {
		var got float64
		for _, route := range []string{"", "web", "down", "unhealthy", "big", "locked"} {
			v, _ := f.value("sluice_requests_total", map[string]string{"route": route, "code_class": class})
			got += v
		}
		if got != want {
			t.Errorf("sluice_requests_total{code_class=%q} = %v; want %v", class, got, want)
		}
	}
}
