package gateway

import (
	"crypto/tls"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// tlsEchoBackend is an HTTPS backend (net/http over crypto/tls) with a certificate from ca
// for 127.0.0.1 and backend.test. It answers with what it saw of the TLS connection (SNI,
// client certificate, version) in headers and the request as an echoInfo, and counts the
// connections it accepted and the requests its handler ran.
type tlsEchoBackend struct {
	srv              *httptest.Server
	accepted, served atomic.Int64
}

func startTLSEcho(t *testing.T, ca *testutil.CA, mod func(*tls.Config)) *tlsEchoBackend {
	t.Helper()
	b := &tlsEchoBackend{}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.served.Add(1)
		body, _ := io.ReadAll(r.Body)
		h := w.Header()
		h.Set("X-SNI", r.TLS.ServerName)
		h.Set("X-TLS-Version", tls.VersionName(r.TLS.Version))
		if len(r.TLS.PeerCertificates) > 0 {
			h.Set("X-Client-CN", r.TLS.PeerCertificates[0].Subject.CommonName)
		}
		fmt.Fprintf(w, "%s %s host=%s body=%s", r.Method, r.RequestURI, r.Host, body)
	}))
	b.srv.TLS = ca.ServerConfig(t, "127.0.0.1", "backend.test")
	if mod != nil {
		mod(b.srv.TLS)
	}
	b.srv.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.accepted.Add(1)
		}
	}
	b.srv.StartTLS()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *tlsEchoBackend) addr() string { return strings.TrimPrefix(b.srv.URL, "https://") }

// do sends one request through the gateway and returns its response with the body read.
func do(t *testing.T, c *http.Client, method, url, body string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// tlsUpstreamGateway starts a gateway whose one route goes to upstream s: target (such as
// "https://{{b}}"), tls its tls block and more more of its YAML (flow entries such as
// "keepalive: {...}"); route is the route's rewrite ("" for none). vars fill placeholders.
func tlsUpstreamGateway(t *testing.T, target, tlsBlock, more, rewrite string, vars map[string]string) *testGateway {
	t.Helper()
	if more != "" {
		more = ", " + more
	}
	if rewrite == "" {
		rewrite = "{}"
	}
	return startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: s, targets: [{address: "`+target+`"}], tls: {`+tlsBlock+`}`+more+`}]
routes: [{id: all, upstream: s, rewrite: `+rewrite+`}]
`, vars)
}

// TestUpstreamTLS: GET and POST reach an HTTPS backend through the gateway; the SNI comes
// from the upstream's tls block (none for an IP target, tls.server_name when set), the Host
// header from the route; sequential requests share one TLS 1.3 connection.
func TestUpstreamTLS(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, tc := range []struct {
		name, tls, rewrite, wantSNI, wantHost string
	}{
		{name: "IP target", tls: "ca_file: {{ca}}", wantSNI: "", wantHost: "client.test"},
		{name: "server_name", tls: "ca_file: {{ca}}, server_name: backend.test", rewrite: "{host: fixed, host_value: app.internal}",
			wantSNI: "backend.test", wantHost: "app.internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startTLSEcho(t, ca, nil)
			tg := tlsUpstreamGateway(t, "https://{{b}}", tc.tls, "", tc.rewrite, map[string]string{"b": b.addr(), "ca": ca.CAFile(t)})
			c := newClient()
			for i := range 10 {
				req, _ := http.NewRequest("GET", tg.url(fmt.Sprintf("/get/%d", i)), nil)
				req.Host = "client.test"
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				mustStatus(t, resp, 200)
				if want := fmt.Sprintf("GET /get/%d host=%s body=", i, tc.wantHost); string(body) != want {
					t.Errorf("backend saw %q, want %q", body, want)
				}
				if sni, v := resp.Header.Get("X-SNI"), resp.Header.Get("X-TLS-Version"); sni != tc.wantSNI || v != "TLS 1.3" {
					t.Errorf("backend saw SNI %q over %s, want %q over TLS 1.3", sni, v, tc.wantSNI)
				}
			}
			resp, body := do(t, c, "POST", tg.url("/post"), "payload")
			mustStatus(t, resp, 200)
			if !strings.HasPrefix(body, "POST /post ") || !strings.HasSuffix(body, "body=payload") {
				t.Errorf("backend saw %q", body)
			}
			if n := b.accepted.Load(); n != 1 {
				t.Errorf("backend accepted %d connections for 11 sequential requests, want 1", n)
			}
			f := gathered(t, tg)
			if v, _ := f.value("sluice_upstream_connection_reuses_total", map[string]string{"upstream": "s"}); v != 10 {
				t.Errorf("reuses = %v, want 10", v)
			}
		})
	}
}

// TestUpstreamTLSVerificationFails: a certificate from an untrusted CA, for another name, or
// expired is answered 502 upstream_tls_certificate for GET and POST alike, the access log's
// error saying which; the backend never runs the request, and the failure is counted.
func TestUpstreamTLSVerificationFails(t *testing.T) {
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	plain := echoBackend(t, "plain")
	expiredPEM, expiredKey := ca.IssuePEM(t, testutil.CertOptions{IPs: []net.IP{net.IPv4(127, 0, 0, 1)}, NotAfter: time.Now().Add(-time.Hour)})
	expired, err := tls.X509KeyPair(expiredPEM, expiredKey)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, target, tls, code, errText, protocol string
		mod                                        func(*tls.Config)
	}{
		{"untrusted CA", "https://{{b}}", "ca_file: {{other}}", "upstream_tls_certificate", "signed by unknown authority", "http1", nil},
		{"wrong name", "https://{{b}}", "ca_file: {{ca}}, server_name: wrong.test", "upstream_tls_certificate", "not wrong.test", "http1", nil},
		{"expired", "https://{{b}}", "ca_file: {{ca}}", "upstream_tls_certificate", "certificate has expired", "http1",
			func(c *tls.Config) { c.Certificates = []tls.Certificate{expired} }},
		{"plain HTTP backend", "https://{{plain}}", "ca_file: {{ca}}", "upstream_tls_handshake", "tls", "http1", nil},
		// HTTP/2 upstreams dial in their own pool (h2pool): the same reasons and counts.
		{"h2 untrusted CA", "https://{{b}}", "ca_file: {{other}}", "upstream_tls_certificate", "signed by unknown authority", "h2", nil},
		{"h2 wrong name", "https://{{b}}", "ca_file: {{ca}}, server_name: wrong.test", "upstream_tls_certificate", "not wrong.test", "h2", nil},
		{"h2 plain HTTP backend", "https://{{plain}}", "ca_file: {{ca}}", "upstream_tls_handshake", "tls", "h2", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startTLSEcho(t, ca, func(c *tls.Config) {
				c.NextProtos = []string{"h2", "http/1.1"} // the handshake gets as far as the certificate
				if tc.mod != nil {
					tc.mod(c)
				}
			})
			tg := tlsUpstreamGateway(t, tc.target, tc.tls, "protocol: "+tc.protocol, "",
				map[string]string{"b": b.addr(), "ca": ca.CAFile(t), "other": other.CAFile(t), "plain": hostport(plain)})
			c := newClient()
			for _, method := range []string{"GET", "POST"} {
				resp, _ := do(t, c, method, tg.url("/x"), "once")
				mustStatus(t, resp, 502)
				if got := resp.Header.Get("X-Sluice-Error"); got != tc.code {
					t.Errorf("%s: X-Sluice-Error %q, want %q", method, got, tc.code)
				}
			}
			if n := b.served.Load(); n != 0 {
				t.Errorf("backend ran %d requests, want 0", n)
			}
			for _, l := range tg.accessLines(2) {
				// Each attempt failed in the dial: retried once (retry.attempts 2), nothing sent.
				if l["reason"] != tc.code || !strings.Contains(fmt.Sprint(l["error"]), tc.errText) || l["attempts"] != 2.0 {
					t.Errorf("access log: reason %v, attempts %v, error %v", l["reason"], l["attempts"], l["error"])
				}
			}
			if v, _ := gathered(t, tg).value("sluice_upstream_tls_handshake_errors_total", map[string]string{"reason": tc.code}); v < 2 {
				t.Errorf("sluice_upstream_tls_handshake_errors_total{reason=%q} = %v, want >= 2", tc.code, v)
			}
		})
	}
}

// TestUpstreamMutualTLS: a backend that requires a client certificate gets the one in
// cert_file/key_file; without one it refuses the connection, and the client is answered 502.
func TestUpstreamMutualTLS(t *testing.T) {
	ca := testutil.NewCA(t)
	crt, key := ca.Issue(t, "sluice-client", testutil.CertOptions{CommonName: "sluice-client", Client: true})
	for _, tc := range []struct {
		name, tls string
		version   uint16
		status    int
		codes     []string // any of them
	}{
		{"client certificate", "ca_file: {{ca}}, cert_file: {{crt}}, key_file: {{key}}", tls.VersionTLS13, 200, []string{""}},
		{"client certificate TLS 1.2", "ca_file: {{ca}}, cert_file: {{crt}}, key_file: {{key}}", tls.VersionTLS12, 200, []string{""}},
		{"none (TLS 1.2: refused in the handshake)", "ca_file: {{ca}}", tls.VersionTLS12, 502, []string{"upstream_tls_handshake"}},
		// The backend's alert arrives after the request was written, and its close resets the
		// connection (the request is unread): the reset can discard the alert.
		{"none (TLS 1.3: refused after the handshake)", "ca_file: {{ca}}", tls.VersionTLS13, 502,
			[]string{"upstream_tls_handshake", "upstream_reset_before_response"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startTLSEcho(t, ca, func(c *tls.Config) {
				c.ClientAuth, c.ClientCAs, c.MaxVersion = tls.RequireAndVerifyClientCert, ca.Pool(), tc.version
			})
			tg := tlsUpstreamGateway(t, "https://{{b}}", tc.tls, "", "", map[string]string{"b": b.addr(), "ca": ca.CAFile(t), "crt": crt, "key": key})
			resp, _ := do(t, newClient(), "POST", tg.url("/x"), "once")
			mustStatus(t, resp, tc.status)
			if got := resp.Header.Get("X-Sluice-Error"); !slices.Contains(tc.codes, got) {
				t.Errorf("X-Sluice-Error %q, want one of %q", got, tc.codes)
			}
			if tc.status == 200 && resp.Header.Get("X-Client-CN") != "sluice-client" {
				t.Errorf("backend saw client certificate %q", resp.Header.Get("X-Client-CN"))
			}
			if tc.status != 200 && b.served.Load() != 0 {
				t.Errorf("backend ran %d requests", b.served.Load())
			}
		})
	}
}

// TestUpstreamTLSResumption: POSTs always get a fresh connection (unsafe_max_idle: 0s); after
// the first, each resumes the session (the pool's session cache), unless resumption is off.
func TestUpstreamTLSResumption(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, tc := range []struct {
		name, tls     string
		full, resumed float64
	}{
		{"on", "ca_file: {{ca}}", 1, 4},
		{"off", "ca_file: {{ca}}, session_resumption: false", 5, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := startTLSEcho(t, ca, nil)
			tg := tlsUpstreamGateway(t, "https://{{b}}", tc.tls, "keepalive: {unsafe_max_idle: 0s}", "", map[string]string{"b": b.addr(), "ca": ca.CAFile(t)})
			c := newClient()
			for i := range 5 {
				resp, _ := do(t, c, "POST", tg.url(fmt.Sprintf("/p%d", i)), "x")
				mustStatus(t, resp, 200)
			}
			f := gathered(t, tg)
			full, _ := f.value("sluice_upstream_tls_handshakes_total", map[string]string{"upstream": "s", "resumed": "false"})
			resumed, _ := f.value("sluice_upstream_tls_handshakes_total", map[string]string{"upstream": "s", "resumed": "true"})
			t.Logf("5 POSTs on fresh connections: %v full handshakes, %v resumed", full, resumed)
			if b.accepted.Load() != 5 || full != tc.full || resumed != tc.resumed {
				t.Errorf("accepted %d, handshakes full %v resumed %v; want 5, %v, %v", b.accepted.Load(), full, resumed, tc.full, tc.resumed)
			}
		})
	}
}

// TestUpstreamTLSIdentity: pools are kept across a reload only when the TLS settings, the
// files' contents and the server name are unchanged; the server name is tls.server_name,
// else the host of the name a target resolved from, else none (an IP target).
func TestUpstreamTLSIdentity(t *testing.T) {
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	caFile := ca.CAFile(t)
	build := func(tlsBlock string) upstreamPools {
		t.Helper()
		cfg := mustParse(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: s, targets: [{address: "10.0.0.1:443"}], tls: {`+tlsBlock+`}}]
routes: [{id: all, upstream: s}]
`, map[string]string{"ca": caFile})
		g := &Generation{pools: &poolRefs{m: map[poolID]*poolRef{}}}
		up, err := g.upstreamPools(cfg.Upstreams[0], testLogger(t))
		if err != nil {
			t.Fatal(err)
		}
		return up
	}
	a, again := build("ca_file: {{ca}}"), build("ca_file: {{ca}}")
	if a.id("", "10.0.0.1:443") != again.id("", "10.0.0.1:443") {
		t.Error("the same tls block gives different pool identities")
	}
	if ip, named := a.tls.serverName(""), a.tls.serverName("api.internal:443"); ip != "" || named != "api.internal" {
		t.Errorf("server names: IP target %q, named target %q; want none and api.internal", ip, named)
	}
	if a.id("api.internal:443", "10.0.0.1:443") == a.id("web.internal:443", "10.0.0.1:443") {
		t.Error("two names resolving to one address share a pool (their SNI differs)")
	}
	fixed := build("ca_file: {{ca}}, server_name: api.internal")
	if fixed.tls.serverName("web.internal:443") != "api.internal" || fixed.id("", "10.0.0.1:443") == a.id("", "10.0.0.1:443") {
		t.Error("server_name: not used, or the identity ignores it")
	}
	testutil.WriteFile(t, caFile, other.CertPEM) // the CA file replaced in place
	if build("ca_file: {{ca}}").id("", "10.0.0.1:443") == a.id("", "10.0.0.1:443") {
		t.Error("a replaced CA file keeps the pool identity")
	}
	if p := a.acquire("api.internal:443", "10.0.0.1:443"); p.TLSConfig().ServerName != "api.internal" {
		t.Errorf("pool server name %q", p.TLSConfig().ServerName)
	}
	a.release("api.internal:443", "10.0.0.1:443")
}

// TestUpstreamClientCertificateRotated: the client certificate's files are watched: after
// they are replaced in place (as cert-manager does), new upstream connections present the
// new certificate without a config reload; a broken replacement keeps the last good one in
// use, and requests keep succeeding.
func TestUpstreamClientCertificateRotated(t *testing.T) {
	ca := testutil.NewCA(t)
	crt, key, install := clientPairFiles(t, ca)
	install("client-one")
	b := startTLSEcho(t, ca, func(c *tls.Config) { c.ClientAuth, c.ClientCAs = tls.RequireAndVerifyClientCert, ca.Pool() })
	// No keep-alive: every request makes a new connection (a new handshake).
	tg := tlsUpstreamGateway(t, "https://{{b}}", "ca_file: {{ca}}, cert_file: {{crt}}, key_file: {{key}}", "keepalive: {enabled: false}", "",
		map[string]string{"b": b.addr(), "ca": ca.CAFile(t), "crt": crt, "key": key})
	cn := func() string {
		t.Helper()
		resp, _ := do(t, newClient(), "GET", tg.url("/x"), "")
		mustStatus(t, resp, 200)
		return resp.Header.Get("X-Client-CN")
	}
	if got := cn(); got != "client-one" {
		t.Fatalf("backend saw %q, want client-one", got)
	}
	install("client-two")
	testutil.WaitFor(t, 10*time.Second, "the rotated client certificate in use", func() bool { return cn() == "client-two" })

	// A key that is not a key: the pair keeps serving.
	testutil.WriteFile(t, key, []byte("not a key\n"))
	time.Sleep(clientCertCheck + 200*time.Millisecond)
	for range 3 {
		if got := cn(); got != "client-two" {
			t.Fatalf("after a broken key file the backend saw %q, want client-two still", got)
		}
	}
}

// clientPairFiles returns the files of a client certificate pair and install, which writes
// a new pair from ca with common name cn over them (in place, as cert-manager does).
func clientPairFiles(t *testing.T, ca *testutil.CA) (crt, key string, install func(cn string)) {
	dir := t.TempDir()
	crt, key = filepath.Join(dir, "client.crt"), filepath.Join(dir, "client.key")
	return crt, key, func(cn string) {
		c, k := ca.IssuePEM(t, testutil.CertOptions{CommonName: cn, Client: true})
		testutil.WriteFile(t, crt, c)
		testutil.WriteFile(t, key, k)
	}
}
