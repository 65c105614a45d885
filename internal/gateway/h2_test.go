package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

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
	return startH2Config(t, useTLS, http2, `
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": backend})
}

// startH2Config starts a gateway whose one listener, "edge", serves HTTP/2 (h2 over TLS
// when useTLS, else h2c) with the listener's http2 block (YAML flow mapping, "" for the
// defaults) and the rest of the config (upstreams, routes...) after it.
func startH2Config(t *testing.T, useTLS bool, http2, rest string, vars map[string]string) *h2Site {
	t.Helper()
	s := &h2Site{tls: useTLS}
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
`+rest, vars)
	return s
}

// transport is an HTTP/2-only client transport for the site (net/http's: h2 by ALPN, or
// h2c with prior knowledge).
func (s *h2Site) transport() *http.Transport {
	var p http.Protocols
	if s.tls {
		p.SetHTTP2(true)
		return &http.Transport{Protocols: &p, TLSClientConfig: s.ca.ClientConfig("site.test")}
	}
	p.SetUnencryptedHTTP2(true)
	return &http.Transport{Protocols: &p}
}

// client is an HTTP/2-only client; its connections close before the gateway shuts down
// (else the test would wait for their drain).
func (s *h2Site) client() *http.Client {
	tr := s.transport()
	s.t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
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
			// HTTP/1.1 clients are still served on the same listener.
			h1 := &http.Transport{DisableKeepAlives: true}
			if m.tls {
				h1.TLSClientConfig = s.ca.ClientConfig("site.test") // offers http/1.1 only
			}
			req, _ = http.NewRequest("GET", s.url("/h1"), nil)
			if resp, _ := getEcho(t, &http.Client{Transport: h1}, req); resp.ProtoMajor != 1 {
				t.Fatalf("HTTP/1.1 client got %s", resp.Proto)
			}
			lines := s.accessLines(4)[:3]
			if l := s.accessLines(4)[3]; l["http_version"] != "HTTP/1.1" {
				t.Fatalf("HTTP/1.1 access line %v", l)
			}
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

// TestH2GRPCErrors: a gateway error towards a gRPC client is a trailers-only response
// (HTTP 200, grpc-status and grpc-message with the reason code, no body) with the status
// that tells a gRPC client what happened; a plain HTTP/2 client still gets the JSON error.
func TestH2GRPCErrors(t *testing.T) {
	dead := testutil.RefusingAddr(t)
	s := startH2Routes(t, `
upstreams: [{id: dead, targets: [{address: `+dead+`}]}]
routes: [{id: svc, match: {path_prefix: /svc.Greeter/}, upstream: dead}]
`)
	c := s.client()
	cases := []struct {
		name, path, ctype string
		grpc              string
		status            int
		reason            string
	}{
		{"not delivered", "/svc.Greeter/Hello", "application/grpc", "14", 200, "upstream_connect_refused"},
		{"no route", "/other.Service/Call", "application/grpc+proto", "12", 200, "no_route"},
		{"plain client", "/other.Service/Call", "application/json", "", 404, "no_route"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", s.url(tc.path), strings.NewReader("\x00\x00\x00\x00\x00"))
			req.Header.Set("Content-Type", tc.ctype)
			req.Header.Set("TE", "trailers")
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.status || resp.Header.Get("Grpc-Status") != tc.grpc || resp.Header.Get("X-Sluice-Error") != tc.reason {
				t.Fatalf("got %d grpc-status %q reason %q", resp.StatusCode, resp.Header.Get("Grpc-Status"), resp.Header.Get("X-Sluice-Error"))
			}
			if tc.grpc != "" {
				if len(body) != 0 || !strings.HasPrefix(resp.Header.Get("Grpc-Message"), tc.reason) || resp.Header.Get("Content-Type") != "application/grpc" {
					t.Fatalf("trailers-only response: body %q, grpc-message %q, content-type %q", body, resp.Header.Get("Grpc-Message"), resp.Header.Get("Content-Type"))
				}
			}
		})
	}
}

// startH2Routes starts an h2c gateway with the given upstreams and routes.
func startH2Routes(t *testing.T, rest string) *h2Site {
	t.Helper()
	return &h2Site{testGateway: startGateway(t, `
listeners:
  - address: 127.0.0.1:0
    name: edge
    protocols: [http1, h2c]
`+rest, nil)}
}

// TestH2ResponseTrailers: trailers of an HTTP/1.1 upstream's chunked response reach an
// HTTP/2 client as an HTTP/2 trailer section, as gRPC's grpc-status must.
func TestH2ResponseTrailers(t *testing.T) {
	be, _ := recordingBackend(t, "HTTP/1.1 200 OK\r\nContent-Type: application/grpc\r\nTransfer-Encoding: chunked\r\nTrailer: Grpc-Status\r\n\r\n"+
		"5\r\n\x00\x00\x00\x00\x00\r\n0\r\nGrpc-Status: 0\r\nGrpc-Message: ok\r\n\r\n")
	for _, m := range h2Modes() {
		t.Run(m.name, func(t *testing.T) {
			s := startH2(t, m.tls, be, "")
			req, _ := http.NewRequest("POST", s.url("/svc.Greeter/Hello"), strings.NewReader("\x00\x00\x00\x00\x00"))
			req.Header.Set("Content-Type", "application/grpc")
			resp, err := s.client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 || len(body) != 5 || resp.Trailer.Get("Grpc-Status") != "0" || resp.Trailer.Get("Grpc-Message") != "ok" {
				t.Fatalf("got %d, body %q, trailer %v", resp.StatusCode, body, resp.Trailer)
			}
		})
	}
}

// TestH2Curl: curl (its HTTP/2 is nghttp2's) gets answers over h2 (ALPN) and h2c with prior
// knowledge.
func TestH2Curl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		if os.Getenv("SLUICE_REQUIRE_EXTERNAL") == "1" {
			t.Fatal("curl not installed")
		}
		t.Skip("curl not installed")
	}
	be := hostport(echoBackend(t, "a"))
	for _, m := range h2Modes() {
		t.Run(m.name, func(t *testing.T) {
			s := startH2(t, m.tls, be, "")
			args := []string{"-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_version} %{http_code}", "-d", "hello"}
			if m.tls {
				_, port, _ := net.SplitHostPort(s.addr)
				args = append(args, "--http2", "--cacert", s.ca.CAFile(t), "--resolve", "site.test:"+port+":127.0.0.1", "https://site.test:"+port+"/curl")
			} else {
				args = append(args, "--http2-prior-knowledge", s.url("/curl"))
			}
			out, err := exec.Command(curl, args...).CombinedOutput()
			if err != nil {
				t.Fatalf("curl: %v\n%s", err, out)
			}
			text := string(out)
			if !strings.HasSuffix(text, "\n2 200") || !strings.Contains(text, `"body":"hello"`) || !strings.Contains(text, `"uri":"/curl"`) {
				t.Fatalf("curl got:\n%s", text)
			}
		})
	}
}

// TestH2StreamStartIsItsRead: a stream's start (its access log duration_ms) is when its
// HEADERS were read, not an older read of the connection: the read loop stamps each read
// (server.stampReader) and streams take that stamp instead of the clock.
func TestH2StreamStartIsItsRead(t *testing.T) {
	for _, m := range h2Modes() {
		t.Run(m.name, func(t *testing.T) {
			s := startH2(t, m.tls, hostport(echoBackend(t, "a")), "")
			c := s.client()
			for i := range 2 {
				if i == 1 {
					time.Sleep(1200 * time.Millisecond) // the connection idles between the two
				}
				reused := false
				ctx := httptrace.WithClientTrace(context.Background(), &httptrace.ClientTrace{
					GotConn: func(ci httptrace.GotConnInfo) { reused = ci.Reused },
				})
				req, _ := http.NewRequestWithContext(ctx, "GET", s.url("/start"), nil)
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if i == 1 && !reused {
					t.Fatal("the second request went on a new connection; the test needs the first one's")
				}
			}
			l := s.accessLines(2)[1]
			if d, _ := l["duration_ms"].(float64); d >= 1000 {
				t.Fatalf("second request on the connection logged duration_ms %v; its start is older than its HEADERS", d)
			}
		})
	}
}
