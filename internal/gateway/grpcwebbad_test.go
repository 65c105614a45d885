package gateway

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"
)

// TestGRPCWebTextBadBody: a grpc-web-text request whose body is not base64 (a character
// outside the alphabet, padding in the middle of a group, a partial group at the end) is the
// client's fault: it is answered 400 bad_request (grpc-status INTERNAL) naming the base64,
// not 502 as a failure of the backend (reset_before_response, grpc-status UNAVAILABLE, which
// gRPC clients retry and which counted against the target), over HTTP/1.1 and h2c. The
// detail (errors.expose_details) names the base64.
func TestGRPCWebTextBadBody(t *testing.T) {
	tg := startGateway(t, grpcWebYAML+"errors: {expose_details: true}\n", map[string]string{"backend": grpcTestService(t)})
	clients := webClients()
	for _, cl := range []string{"http1", "h2c"} {
		for _, tc := range []struct{ name, body string }{
			{"alphabet", "AAAA!AAA"},
			{"padding mid-group", "AA=A"},
			{"partial group", "AAAAAAB"},
			// A message of 200000 bytes announced, 120001 sent, then a bad group: the
			// backend is still waiting for the message when the body fails.
			{"large", base64.StdEncoding.EncodeToString([]byte{0, 0, 3, 0x0d, 0x40, 0}) + strings.Repeat("AAAA", 40000) + "*AAA"},
		} {
			t.Run(cl+"/"+tc.name, func(t *testing.T) {
				req, _ := http.NewRequest("POST", tg.url("/grpc.testing.TestService/UnaryCall"), strings.NewReader(tc.body))
				req.Header.Set("Content-Type", "application/grpc-web-text")
				resp, err := clients[cl].Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 || resp.Header.Get("Grpc-Status") != "13" || !strings.Contains(resp.Header.Get("Grpc-Message"), "base64") {
					t.Errorf("%d, grpc-status %q, grpc-message %q, X-Sluice-Error %q; want 200, grpc-status 13 (INTERNAL) and a message naming the base64",
						resp.StatusCode, resp.Header.Get("Grpc-Status"), resp.Header.Get("Grpc-Message"), resp.Header.Get("X-Sluice-Error"))
				}
				if got := resp.Header.Get("X-Sluice-Error"); got != "bad_request" {
					t.Errorf("X-Sluice-Error %q; want bad_request", got)
				}
			})
		}
	}
}

// TestGRPCWebRouteRewritesContentType: a grpc_web route whose rewrite removes or replaces
// the request's Content-Type (remove_headers, set_headers) must not crash the request: the
// translation took the grpc-web suffix from the field as rewritten, a slice past its end
// (a panic that dropped the client's connection). The operator's rewrite stands; the call is
// answered.
func TestGRPCWebRouteRewritesContentType(t *testing.T) {
	for _, tc := range []struct{ name, rewrite string }{
		{"removed", `{remove_headers: [Content-Type]}`},
		{"replaced shorter", `{set_headers: {Content-Type: application/grpc}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: grpc
    targets: [{address: "{{backend}}"}]
    protocol: h2c
routes:
  - id: web
    upstream: grpc
    grpc_web: true
    rewrite: `+tc.rewrite+`
`, map[string]string{"backend": grpcTestService(t)})
			for _, text := range []bool{false, true} {
				ct, body := "application/grpc-web+proto", "\x00\x00\x00\x00\x00"
				if text {
					ct, body = "application/grpc-web-text+proto", "AAAAAAA="
				}
				req, _ := http.NewRequest("POST", tg.url("/grpc.testing.TestService/EmptyCall"), strings.NewReader(body))
				req.Header.Set("Content-Type", ct)
				resp, err := newClient().Do(req)
				if err != nil {
					t.Fatalf("%s: %v (the connection was dropped)", ct, err)
				}
				resp.Body.Close()
				if e := resp.Header.Get("X-Sluice-Error"); e != "" {
					t.Errorf("%s: the gateway failed the call (%s); want the backend's answer", ct, e)
				}
				t.Logf("%s: %d %s grpc-status %q %q %q", ct, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Grpc-Status"), resp.Header.Get("X-Sluice-Error"), resp.Header.Get("Grpc-Message"))
			}
		})
	}
}
