package gateway

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// The traffic policy plugins through the gateway (response-headers, redirect,
// static-response, fault-injection), each over HTTP/1.1, h2 (TLS) and h2c: one listener,
// one backend that counts what reaches it, so that a local answer provably never touched
// the upstream.

// policyBackend answers 200 with the fields response-headers edits, and counts requests.
func policyBackend(t *testing.T) (*httptest.Server, *atomic.Int64) {
	t.Helper()
	var hits atomic.Int64
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Server", "backend/1.0")
		w.Header().Set("X-Powered-By", "php")
		w.Header().Set("Cache-Control", "public, max-age=60")
		w.Header().Add("Vary", "Accept")
		w.Header().Set("X-Path", r.URL.RequestURI())
		w.Write([]byte("from backend"))
	}))
	t.Cleanup(be.Close)
	return be, &hits
}

// policySite is a gateway in front of a policyBackend, over one protocol.
type policySite struct {
	*testGateway
	client *http.Client
	scheme string
	proto  int // the HTTP major version responses must have
}

func (s *policySite) url(path string) string { return s.scheme + "://" + s.addr + path }

// policyModes are the downstream protocols every policy test runs over.
var policyModes = []string{"http1", "h2", "h2c"}

// startPolicy starts a gateway with routes (YAML, the routes: list's items) over mode.
func startPolicy(t *testing.T, mode, routes string, vars map[string]string) *policySite {
	t.Helper()
	listener := "protocols: [http1, h2c]"
	s := &policySite{scheme: "http", proto: 1}
	var tr *http.Transport
	switch mode {
	case "h2":
		ca := testutil.NewCA(t)
		vars["c"], vars["k"] = ca.Issue(t, "site", testutil.CertOptions{DNSNames: []string{"site.test"}})
		listener = "protocols: [http1, h2]\n    tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}]}"
		var p http.Protocols
		p.SetHTTP2(true)
		tr = &http.Transport{Protocols: &p, TLSClientConfig: ca.ClientConfig("site.test")}
		s.scheme, s.proto = "https", 2
	case "h2c":
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		tr = &http.Transport{Protocols: &p}
		s.proto = 2
	default:
		tr = &http.Transport{}
	}
	s.testGateway = startGateway(t, `
listeners:
  - address: 127.0.0.1:0
    `+listener+`
upstreams: [{id: be, targets: [{address: {{b}}}]}]
routes:
`+routes, vars)
	t.Cleanup(tr.CloseIdleConnections)
	s.client = &http.Client{Transport: tr, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return s
}

// do sends method path with Host host ("" for the address) and returns the response and
// its body, checking the protocol.
func (s *policySite) do(t *testing.T, method, path, host string, h ...string) (*http.Response, string) {
	t.Helper()
	var hv []string
	if host != "" {
		hv = append(hv, "Host", host)
	}
	resp, body := send(t, s.client, method, s.url(path), append(hv, h...)...)
	if resp.ProtoMajor != s.proto {
		t.Fatalf("%s %s: answered over %s, want HTTP/%d", method, path, resp.Proto, s.proto)
	}
	return resp, body
}

// TestResponseHeaders: set replaces the upstream's field (one value left), add appends
// after the upstream's, remove drops Server and X-Powered-By (any case); set and add also
// go on a plugin's refusal (ip-restriction's 403, after response-headers in the list).
func TestResponseHeaders(t *testing.T) {
	const plugin = `      - name: response-headers
        config:
          set: {Cache-Control: no-store, Strict-Transport-Security: max-age=63072000}
          add: {Vary: Origin}
          remove: [Server, x-powered-by]
`
	for _, mode := range policyModes {
		t.Run(mode, func(t *testing.T) {
			be, hits := policyBackend(t)
			s := startPolicy(t, mode, `
  - id: headers
    match: {path_prefix: /h/}
    upstream: be
    plugins:
`+plugin+`
  - id: denied
    match: {path_prefix: /denied/}
    upstream: be
    plugins:
`+plugin+`      - name: ip-restriction
        config: {deny: [127.0.0.0/8, "::1"]}
`, map[string]string{"b": hostport(be)})

			resp, body := s.do(t, "GET", "/h/x", "")
			if resp.StatusCode != 200 || body != "from backend" {
				t.Fatalf("GET /h/x: %d %q", resp.StatusCode, body)
			}
			h := resp.Header
			if v := h.Values("Cache-Control"); len(v) != 1 || v[0] != "no-store" {
				t.Errorf("Cache-Control %q, want only the set no-store", v)
			}
			if v := h.Get("Strict-Transport-Security"); v != "max-age=63072000" {
				t.Errorf("Strict-Transport-Security %q", v)
			}
			if v := h.Values("Vary"); strings.Join(v, ",") != "Accept,Origin" {
				t.Errorf("Vary %q, want the upstream's Accept then the added Origin", v)
			}
			if h.Get("Server") != "" || h.Get("X-Powered-By") != "" {
				t.Errorf("removed fields still there: Server %q X-Powered-By %q", h.Get("Server"), h.Get("X-Powered-By"))
			}
			if h.Get("X-Path") != "/h/x" {
				t.Errorf("an untouched upstream field is lost: %v", h)
			}

			resp, _ = s.do(t, "GET", "/denied/x", "")
			if resp.StatusCode != 403 || resp.Header.Get("X-Sluice-Error") != "ip_forbidden" {
				t.Fatalf("GET /denied/x: %d %q, want 403 ip_forbidden", resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
			}
			if resp.Header.Get("Cache-Control") != "no-store" || resp.Header.Get("Strict-Transport-Security") == "" ||
				resp.Header.Get("Vary") != "Origin" {
				t.Errorf("the gateway's 403 lacks the set and added fields: %v", resp.Header)
			}
			if n := hits.Load(); n != 1 {
				t.Errorf("backend saw %d requests, want 1", n)
			}
		})
	}
}

// TestRedirect: a regex path rewrite with its capture (308, query kept and appended), to
// https (301, port dropped for the default one; a TLS request is forwarded instead of
// redirected to itself), to https on a given port, to another host and path (query
// dropped). The answer is logged with plugin and reason "redirect", counted as a plugin
// answer and not as a gateway error; the upstream is never asked.
func TestRedirect(t *testing.T) {
	for _, mode := range policyModes {
		t.Run(mode, func(t *testing.T) {
			be, hits := policyBackend(t)
			s := startPolicy(t, mode, `
  - id: old
    match: {path_prefix: /old/}
    upstream: be
    plugins:
      - name: redirect
        config: {path_regex: "^/old/(.*)$", path_replacement: "/new/$1", status: 308, append_query: "from=old"}
  - id: secure
    match: {path_prefix: /secure/}
    upstream: be
    plugins:
      - name: redirect
        config: {scheme: https, status: 301}
  - id: secure-port
    match: {path_prefix: /sp/}
    upstream: be
    plugins:
      - name: redirect
        config: {scheme: https, port: 8443, status: 307}
  - id: moved
    match: {path_prefix: /moved}
    upstream: be
    plugins:
      - name: redirect
        config: {host: new.example, path: /landing, query: drop}
`, map[string]string{"b": hostport(be)})
			const host = "example.com:8080"
			cases := []struct {
				path   string
				status int
				loc    string
			}{
				{"/old/a/b?x=1", 308, s.scheme + "://example.com:8080/new/a/b?x=1&from=old"},
				{"/secure/x?q=1", 301, "https://example.com/secure/x?q=1"},
				{"/sp/x", 307, "https://example.com:8443/sp/x"},
				{"/moved?x=1", 302, s.scheme + "://new.example/landing"},
			}
			wantHits := int64(0)
			for _, tc := range cases {
				resp, body := s.do(t, "GET", tc.path, host)
				if mode == "h2" && tc.path == "/secure/x?q=1" {
					// Already https on this host and port: the Location would be the
					// request's own URL, so the request is forwarded, not looped.
					if resp.StatusCode != 200 || body != "from backend" {
						t.Errorf("TLS %s: %d %q, want the backend's 200", tc.path, resp.StatusCode, body)
					}
					wantHits++
					continue
				}
				if resp.StatusCode != tc.status || resp.Header.Get("Location") != tc.loc || body != "" {
					t.Errorf("%s: %d Location %q body %q, want %d %q and no body", tc.path, resp.StatusCode,
						resp.Header.Get("Location"), body, tc.status, tc.loc)
				}
				if resp.Header.Get("X-Sluice-Error") != "" {
					t.Errorf("%s: a redirect carries X-Sluice-Error %q", tc.path, resp.Header.Get("X-Sluice-Error"))
				}
			}
			if resp, _ := s.do(t, "GET", "/sp/v6", "[::1]:8080"); resp.Header.Get("Location") != "https://[::1]:8443/sp/v6" {
				t.Errorf("IPv6 Host: Location %q", resp.Header.Get("Location"))
			}
			if mode == "http1" {
				// HTTP/1.0 without Host: no URL to redirect to.
				out := rawExchange(t, s.addr, "GET /secure/x HTTP/1.0\r\n\r\n", 2*time.Second)
				if !strings.HasPrefix(out, "HTTP/1.1 400 ") || !strings.Contains(out, "bad_request") {
					t.Errorf("HTTP/1.0 without Host: %q, want 400 bad_request", out)
				}
			}
			if n := hits.Load(); n != wantHits {
				t.Errorf("backend saw %d requests, want %d", n, wantHits)
			}
			line := s.accessLines(len(cases))[0]
			if line["plugin"] != "redirect" || line["reason"] != "redirect" || line["status"] != float64(308) {
				t.Errorf("access log line %v, want plugin and reason redirect, status 308", line)
			}
			if n := pluginAnswers(t, s.testGateway, "old", "redirect", "redirect"); n != 1 {
				t.Errorf("sluice_plugin_answers_total{route=old} = %v, want 1", n)
			}
			if n, ok := gathered(t, s.testGateway).value("sluice_gateway_errors_total", map[string]string{"reason": "redirect"}); ok {
				t.Errorf("redirects counted as gateway errors: %v", n)
			}
		})
	}
}

// TestStaticResponse: /robots.txt from an inline body (Content-Type defaulted; HEAD gets
// no body) and a maintenance page from a file with its status and fields; the upstream is
// never asked, and the 503 is neither an error body nor a gateway error.
func TestStaticResponse(t *testing.T) {
	const robots = "User-agent: *\nDisallow: /private/\n"
	page := filepath.Join(t.TempDir(), "maintenance.html")
	if err := os.WriteFile(page, []byte("<h1>Back soon</h1>\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, mode := range policyModes {
		t.Run(mode, func(t *testing.T) {
			be, hits := policyBackend(t)
			s := startPolicy(t, mode, `
  - id: robots
    match: {path: /robots.txt}
    upstream: be
    plugins:
      - name: static-response
        config: {body: "User-agent: *\nDisallow: /private/\n"}
  - id: shop
    match: {path_prefix: /shop/}
    upstream: be
    plugins:
      - name: static-response
        config: {status: 503, body_file: {{page}}, headers: {Content-Type: text/html, Retry-After: "3600"}}
`, map[string]string{"b": hostport(be), "page": page})
			resp, body := s.do(t, "GET", "/robots.txt", "")
			if resp.StatusCode != 200 || body != robots || resp.Header.Get("Content-Type") != "text/plain; charset=utf-8" {
				t.Errorf("robots.txt: %d %q %q", resp.StatusCode, resp.Header.Get("Content-Type"), body)
			}
			resp, body = s.do(t, "HEAD", "/robots.txt", "")
			if resp.StatusCode != 200 || body != "" {
				t.Errorf("HEAD robots.txt: %d body %q, want 200 without body", resp.StatusCode, body)
			}
			resp, body = s.do(t, "POST", "/shop/cart", "")
			if resp.StatusCode != 503 || body != "<h1>Back soon</h1>\n" || resp.Header.Get("Content-Type") != "text/html" ||
				resp.Header.Get("Retry-After") != "3600" || resp.Header.Get("X-Sluice-Error") != "" {
				t.Errorf("maintenance: %d %v %q", resp.StatusCode, resp.Header, body)
			}
			if n := hits.Load(); n != 0 {
				t.Errorf("backend saw %d requests, want none", n)
			}
			lines := s.accessLines(3)
			if l := lines[2]; l["reason"] != "static_response" || l["plugin"] != "static-response" || l["status"] != float64(503) {
				t.Errorf("access log line %v", l)
			}
			if n, ok := gathered(t, s.testGateway).value("sluice_gateway_errors_total", map[string]string{"reason": "static_response"}); ok {
				t.Errorf("a static response counted as a gateway error: %v", n)
			}
		})
	}
}
