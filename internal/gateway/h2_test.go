package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"sluice/internal/testutil"
)

// h2Site is a gateway with one HTTP/2 listener: h2 over TLS (tls set) or h2c.
type h2Site struct {
	*testGateway
	ca  *testutil.CA
	tls bool
}

// startH2 starts a gateway whose one listener serves HTTP/2 (h2 over TLS when useTLS, else
// h2c) in front of backend; http2 is the listener's http2 block (YAML flow mapping, "" for
// the defaults).
func startH2(t *testing.T, useTLS bool, backend, http2 string) *h2Site {
	t.Helper()
	s := &h2Site{tls: useTLS}
	vars := map[string]string{"b": backend}
	listener := "protocols: [http1, h2c]"
	if useTLS {
		s.ca = testutil.NewCA(t)
		vars["c"], vars["k"] = s.ca.Issue(t, "site", testutil.CertOptions{DNSNames: []string{"site.test"}})
		listener = "protocols: [http1, h2]\n    tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}]}"
	}
	if http2 != "" {
		listener += "\n    http2: " + http2
	}
	s.testGateway = startGateway(t, `
listeners:
  - address: 127.0.0.1:0
    name: edge
    `+listener+`
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, vars)
	return s
}

// transport is an HTTP/2-only client transport for the site.
func (s *h2Site) transport() *http2.Transport {
	if s.tls {
		return &http2.Transport{TLSClientConfig: s.ca.ClientConfig("site.test")}
	}
	return &http2.Transport{AllowHTTP: true, DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
}

func (s *h2Site) client() *http.Client {
	return &http.Client{Transport: s.transport(), Timeout: 10 * time.Second}
}

func (s *h2Site) url(path string) string {
	if s.tls {
		return "https://" + s.addr + path
	}
	return "http://" + s.addr + path
}

func h2Modes() []struct {
	name string
	tls  bool
} {
	return []struct {
		name string
		tls  bool
	}{{"h2", true}, {"h2c", false}}
}

// TestH2Proxy: over h2 and h2c, requests with and without bodies reach the backend as
// HTTP/1.1 with the client's method, target, authority and body, and each gets an access
// log line with http_version HTTP/2.
func TestH2Proxy(t *testing.T) {
	for _, m := range h2Modes() {
		t.Run(m.name, func(t *testing.T) {
			s := startH2(t, m.tls, hostport(echoBackend(t, "a")), "")
			c := s.client()
			req, _ := http.NewRequest("GET", s.url("/get/x?q=1"), nil)
			req.Header.Set("X-Request-Id", "h2-get")
			resp, info := getEcho(t, c, req)
			if resp.ProtoMajor != 2 || info.Method != "GET" || info.URI != "/get/x?q=1" || !strings.HasPrefix(info.Host, "127.0.0.1:") {
				t.Fatalf("proto %s, backend saw %s %s host %q", resp.Proto, info.Method, info.URI, info.Host)
			}
			if got := resp.Header.Get("X-Backend"); got != "a" {
				t.Fatalf("X-Backend = %q", got)
			}
			// A body without a declared length (a stream) and one with.
			pr, pw := io.Pipe()
			go func() { pw.Write([]byte("streamed ")); pw.Write([]byte("body")); pw.Close() }()
			req, _ = http.NewRequest("POST", s.url("/post"), pr)
			_, info = getEcho(t, c, req)
			if info.Body != "streamed body" || info.Method != "POST" {
				t.Fatalf("backend got %s %q", info.Method, info.Body)
			}
			req, _ = http.NewRequest("PUT", s.url("/put"), strings.NewReader("sized"))
			_, info = getEcho(t, c, req)
			if info.Body != "sized" {
				t.Fatalf("backend got %q", info.Body)
			}
			lines := s.accessLines(3)
			for _, l := range lines {
				if l["http_version"] != "HTTP/2" || l["route"] != "all" || l["status"] != float64(200) {
					t.Fatalf("access line %v", l)
				}
			}
			if lines[0]["request_id"] != "h2-get" {
				t.Fatalf("request_id = %v", lines[0]["request_id"])
			}
		})
	}
}

// TestH2PrefaceWithoutH2C: a listener without h2c answers the HTTP/2 preface 505 with a
// reason, as any request in a version it does not serve.
func TestH2PrefaceWithoutH2C(t *testing.T) {
	yaml, vars := basicConfig(hostport(echoBackend(t, "a")))
	tg := startGateway(t, yaml, vars)
	got := rawExchange(t, tg.addr, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 2*time.Second)
	if !strings.HasPrefix(got, "HTTP/1.1 505 ") || !strings.Contains(got, "X-Sluice-Error: http_version_not_supported") {
		t.Fatalf("answer to the preface:\n%s", got)
	}
}

func decodeJSON(t *testing.T, r io.Reader, v any) {
	t.Helper()
	if err := json.NewDecoder(r).Decode(v); err != nil {
		t.Fatal(err)
	}
}
