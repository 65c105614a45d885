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
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	clients := map[string]*http.Client{"http1": newClient(), "h2c": {Transport: &http.Transport{Protocols: &h2c}}}
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
