package gateway

import (
	"net/http"
	"strings"
	"testing"

	"sluice/internal/testutil"
)

// TestH2Plugins: an HTTP/2 stream goes through the same plugin chain as an HTTP/1.1
// exchange: key-auth answers 401 with its WWW-Authenticate challenge (the stream's
// WriteErrorFields), a known key is removed before forwarding and names the consumer, and a
// CORS preflight is answered before auth; over h2 (TLS) and h2c.
func TestH2Plugins(t *testing.T) {
	be := echoBackend(t, "b")
	for _, m := range h2Modes() {
		t.Run(m.name, func(t *testing.T) {
			vars := map[string]string{"backend": hostport(be)}
			listener := "protocols: [http1, h2c]"
			s := &h2Site{tls: m.tls}
			if m.tls {
				s.ca = testutil.NewCA(t)
				vars["c"], vars["k"] = s.ca.Issue(t, "site", testutil.CertOptions{DNSNames: []string{"site.test"}})
				listener = "protocols: [http1, h2]\n    tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}]}"
			}
			s.testGateway = startGateway(t, `
listeners:
  - address: 127.0.0.1:0
    `+listener+`
upstreams: [{id: echo, targets: [{address: {{backend}}}]}]
consumers:
  - name: alice
    credentials: {key-auth: {keys: ["alice-key-0123456789"]}}
routes:
  - id: api
    upstream: echo
    plugins:
      - name: key-auth
      - name: cors
        config: {allow_origins: ["https://app.example"], allow_headers: [apikey]}
`, vars)
			c := s.client()

			req, _ := http.NewRequest("GET", s.url("/api/x"), nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.ProtoMajor != 2 || resp.StatusCode != 401 || resp.Header.Get("X-Sluice-Error") != "auth_credentials_missing" {
				t.Fatalf("no key: %s %d %q, want HTTP/2 401 auth_credentials_missing", resp.Proto, resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
			}
			if resp.Header.Get("WWW-Authenticate") == "" {
				t.Errorf("no key: the 401 has no WWW-Authenticate challenge: %v", resp.Header)
			}

			req, _ = http.NewRequest("OPTIONS", s.url("/api/x"), nil)
			req.Header.Set("Origin", "https://app.example")
			req.Header.Set("Access-Control-Request-Method", "GET")
			req.Header.Set("Access-Control-Request-Headers", "apikey")
			resp, err = c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode/100 != 2 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
				t.Errorf("preflight: %d %v, want 2xx with the origin allowed before auth", resp.StatusCode, resp.Header)
			}

			req, _ = http.NewRequest("GET", s.url("/api/x"), nil)
			req.Header.Set("apikey", "alice-key-0123456789")
			resp, info := getEcho(t, c, req)
			if resp.StatusCode != 200 {
				t.Fatalf("known key: %d, want 200", resp.StatusCode)
			}
			if _, ok := info.Header["Apikey"]; ok {
				t.Errorf("the key was forwarded: %v", info.Header)
			}
			if got := strings.Join(info.Header["X-Consumer-Name"], ","); got != "alice" {
				t.Errorf("X-Consumer-Name = %q, want alice", got)
			}
			lines := s.accessLines(3)
			if lines[2]["consumer"] != "alice" || lines[0]["plugin"] != "key-auth" || lines[0]["http_version"] != "HTTP/2" {
				t.Errorf("access log: %v / %v", lines[0], lines[2])
			}
		})
	}
}
