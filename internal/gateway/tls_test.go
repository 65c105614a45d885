package gateway

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// gathered returns the gateway's metrics as scraped families, without the admin listener.
func gathered(t *testing.T, tg *testGateway) families {
	t.Helper()
	mfs, err := tg.gw.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	f := families{}
	for _, mf := range mfs {
		f[mf.GetName()] = mf
	}
	return f
}

// tlsSite is a TLS gateway in front of an echo backend, with its CA and certificate files.
type tlsSite struct {
	*testGateway
	ca                *testutil.CA
	certA, keyA       string // a.test
	certWild, keyWild string // *.b.test

}

// startTLSSite starts a gateway whose listener serves a.test and *.b.test; extra is more of
// the listener's tls block (YAML flow entries, e.g. "unknown_sni: reject").
func startTLSSite(t *testing.T, extra string) *tlsSite {
	t.Helper()
	ca := testutil.NewCA(t)
	s := &tlsSite{ca: ca}
	s.certA, s.keyA = ca.Issue(t, "a", testutil.CertOptions{DNSNames: []string{"a.test"}})
	s.certWild, s.keyWild = ca.Issue(t, "wild", testutil.CertOptions{DNSNames: []string{"*.b.test"}})
	if extra != "" {
		extra = ", " + extra
	}
	s.testGateway = startGateway(t, `
listeners:
  - address: 127.0.0.1:0
    name: https
    tls: {certificates: [{cert_file: {{ca}}, key_file: {{ka}}}, {cert_file: {{cw}}, key_file: {{kw}}}], handshake_timeout: 1s`+extra+`}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"ca": s.certA, "ka": s.keyA, "cw": s.certWild, "kw": s.keyWild, "b": hostport(echoBackend(t, "a"))})
	return s
}

// client returns an HTTPS client that trusts the site's CA and sends serverName as SNI.
func (s *tlsSite) client(serverName string, certs ...tls.Certificate) *http.Client {
	cfg := s.ca.ClientConfig(serverName)
	cfg.Certificates = certs
	return &http.Client{Transport: &http.Transport{TLSClientConfig: cfg}, Timeout: 5 * time.Second}
}

// servedName dials the site with serverName as SNI and returns the first DNS name of the
// certificate it served.
func (s *tlsSite) servedName(t *testing.T, serverName string) (string, error) {
	t.Helper()
	cfg := &tls.Config{ServerName: serverName, InsecureSkipVerify: true}
	c, err := tls.Dial("tcp", s.addr, cfg)
	if err != nil {
		return "", err
	}
	defer c.Close()
	leaf := c.ConnectionState().PeerCertificates[0]
	return leaf.DNSNames[0], nil
}

// TestTLSCertificateBySNI: exact names, wildcards, and the first certificate for clients
// without SNI or with an unknown name.
func TestTLSCertificateBySNI(t *testing.T) {
	s := startTLSSite(t, "")
	for _, tc := range []struct{ sni, want string }{
		{"a.test", "a.test"}, {"A.Test", "a.test"}, {"x.b.test", "*.b.test"}, {"b.test", "a.test"},
		{"deep.x.b.test", "a.test"}, {"unknown.example", "a.test"}, {"", "a.test"},
	} {
		got, err := s.servedName(t, tc.sni)
		if err != nil || got != tc.want {
			t.Errorf("SNI %q: served %q (%v), want %q", tc.sni, got, err, tc.want)
		}
	}
	resp, err := s.client("x.b.test").Get("https://" + s.addr + "/hello")
	if err != nil {
		t.Fatal(err)
	}
	var info echoInfo
	json.NewDecoder(resp.Body).Decode(&info)
	resp.Body.Close()
	mustStatus(t, resp, 200)
	if got := info.Header["X-Forwarded-Proto"]; len(got) != 1 || got[0] != "https" {
		t.Errorf("X-Forwarded-Proto = %v, want https", got)
	}
	l := s.accessLines(1)[0]
	if l["tls_version"] != "TLS 1.3" || l["sni"] != "x.b.test" || l["tls_cipher"] == "" || l["tls_resumed"] != false {
		t.Errorf("access log TLS fields: %v", l)
	}
	if v, _ := gathered(t, s.testGateway).value("sluice_tls_handshakes_total", map[string]string{"listener": "https", "version": "TLS 1.3", "resumed": "false"}); v < 1 {
		t.Errorf("sluice_tls_handshakes_total = %v", v)
	}
}

// TestTLSUnknownSNIRejected: with unknown_sni: reject, a handshake without SNI or for a name no
// certificate covers gets the unrecognized_name alert (RFC 6066 §3; it was internal_error),
// over TLS 1.2 and 1.3, and is counted as unknown_sni.
func TestTLSUnknownSNIRejected(t *testing.T) {
	s := startTLSSite(t, "unknown_sni: reject")
	n := 0
	for _, version := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, sni := range []string{"", "unknown.example"} {
			cfg := &tls.Config{ServerName: sni, InsecureSkipVerify: true, MinVersion: version, MaxVersion: version}
			c, err := tls.Dial("tcp", s.addr, cfg)
			if err == nil {
				c.Close()
				t.Fatalf("%s, SNI %q: served", tls.VersionName(version), sni)
			}
			n++
			var oe *net.OpError
			if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err.Error() != tls.AlertError(112).Error() {
				t.Errorf("%s, SNI %q: %v, want the alert %q", tls.VersionName(version), sni, err, tls.AlertError(112).Error())
			}
		}
	}
	testutil.WaitFor(t, 2*time.Second, "unknown_sni handshake failures", func() bool {
		v, _ := gathered(t, s.testGateway).value("sluice_tls_handshake_errors_total", map[string]string{"reason": "unknown_sni"})
		return v == float64(n)
	})
	if _, err := s.servedName(t, "a.test"); err != nil {
		t.Fatalf("known name: %v", err)
	}
}

// TestTLSBadClients: plain HTTP on the TLS port, a client that never finishes its handshake
// (bounded by handshake_timeout) and a truncated ClientHello each end in a closed connection,
// counted by reason; the gateway keeps serving.
func TestTLSBadClients(t *testing.T) {
	s := startTLSSite(t, "")
	c, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(3 * time.Second))
	out, _ := io.ReadAll(c)
	c.Close()
	if strings.Contains(string(out), "200 OK") {
		t.Fatalf("plain HTTP on the TLS port was served: %q", out)
	}
	start := time.Now()
	silent, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	silent.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := silent.Read(make([]byte, 1)); err == nil || time.Since(start) > 3*time.Second {
		t.Fatalf("silent client: read %v after %v; want the connection closed after the 1s handshake timeout", err, time.Since(start))
	}
	silent.Close()
	trunc, err := net.Dial("tcp", s.addr)
	if err != nil {
		t.Fatal(err)
	}
	trunc.Write([]byte{0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00}) // a ClientHello record cut short
	trunc.Close()
	testutil.WaitFor(t, 3*time.Second, "not_tls, timeout and client_closed failures", func() bool {
		f := gathered(t, s.testGateway)
		notTLS, _ := f.value("sluice_tls_handshake_errors_total", map[string]string{"reason": "not_tls"})
		timeout, _ := f.value("sluice_tls_handshake_errors_total", map[string]string{"reason": "timeout"})
		closed, _ := f.value("sluice_tls_handshake_errors_total", map[string]string{"reason": "client_closed"})
		return notTLS == 1 && timeout == 1 && closed == 1
	})
	resp, err := s.client("a.test").Get("https://" + s.addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mustStatus(t, resp, 200)
}

// TestTLSCertificateFileReplacedUnderLoad: a certificate file replaced on disk (as
// cert-manager and certbot do) is served from the next handshakes on, with no failed
// request while it happens; a broken replacement keeps the old certificate serving and is
// counted as a failed reload.
func TestTLSCertificateFileReplacedUnderLoad(t *testing.T) {
	s := startTLSSite(t, "")
	var failed, ok atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 2000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				c := s.client("a.test") // a new connection, so a new handshake, each time
				resp, err := c.Get("https://" + s.addr + "/")
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				} else {
					ok.Add(1)
				}
				c.CloseIdleConnections()
			}
		}()
	}
	testutil.WaitFor(t, 5*time.Second, "20 requests", func() bool { return ok.Load() > 20 })
	later := time.Now().Add(48 * time.Hour).Truncate(time.Second)
	certPEM, keyPEM := s.ca.IssuePEM(t, testutil.CertOptions{DNSNames: []string{"a.test"}, NotAfter: later})
	testutil.WriteFile(t, s.keyA, keyPEM) // key first: until the certificate follows, the pair does not match
	testutil.WriteFile(t, s.certA, certPEM)
	testutil.WaitFor(t, 10*time.Second, "the replaced certificate served", func() bool { return s.notAfter(t, "a.test").Equal(later) })
	n := ok.Load()
	testutil.WaitFor(t, 5*time.Second, "20 more requests", func() bool { return ok.Load() > n+20 })
	close(stop)
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed while the certificate was replaced", failed.Load(), failed.Load()+ok.Load())
	}
	f := gathered(t, s.testGateway)
	if v, _ := f.value("sluice_tls_certificate_expiry_timestamp_seconds", map[string]string{"cert_file": s.certA}); v != float64(later.Unix()) {
		t.Errorf("expiry metric %v, want %v", v, later.Unix())
	}

	// A broken file: the certificate in force keeps serving.
	if err := os.WriteFile(s.certA, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 10*time.Second, "a failed certificate reload", func() bool {
		v, _ := gathered(t, s.testGateway).value("sluice_tls_certificate_reloads_total", map[string]string{"result": "failure"})
		return v >= 1
	})
	if got := s.notAfter(t, "a.test"); !got.Equal(later) {
		t.Fatalf("after a broken certificate file the served certificate expires %v, want the previous one's %v", got, later)
	}
}

func (s *tlsSite) notAfter(t *testing.T, sni string) time.Time {
	t.Helper()
	c, err := tls.Dial("tcp", s.addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		return time.Time{}
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].NotAfter
}

// TestMutualTLS: client_auth require refuses clients without a certificate from the CA;
// optional lets them in; either refuses an expired one; each refusal is counted
// bad_certificate; a verified client's subject is in the access log.
func TestMutualTLS(t *testing.T) {
	clientCA := testutil.NewCA(t)
	good, err := tlsCert(clientCA.IssuePEM(t, testutil.CertOptions{CommonName: "svc-billing", Client: true}))
	if err != nil {
		t.Fatal(err)
	}
	expired, err := tlsCert(clientCA.IssuePEM(t, testutil.CertOptions{CommonName: "svc-old", Client: true, NotAfter: time.Now().Add(-time.Hour)}))
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := tlsCert(testutil.NewCA(t).IssuePEM(t, testutil.CertOptions{CommonName: "mallory", Client: true}))
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"require", "optional"} {
		t.Run(mode, func(t *testing.T) {
			s := startTLSSite(t, fmt.Sprintf("client_auth: %s, client_ca_file: %s", mode, clientCA.CAFile(t)))
			try := func(certs ...tls.Certificate) (int, error) {
				resp, err := s.client("a.test", certs...).Get("https://" + s.addr + "/")
				if err != nil {
					return 0, err
				}
				resp.Body.Close()
				return resp.StatusCode, nil
			}
			if code, err := try(good); code != 200 {
				t.Fatalf("client with a good certificate: %d %v", code, err)
			}
			if code, err := try(stranger); err == nil {
				t.Errorf("client with a certificate from another CA: %d, want a failed handshake", code)
			}
			code, err := try()
			if mode == "require" && err == nil {
				t.Errorf("client without a certificate: %d, want a failed handshake", code)
			}
			if mode == "optional" && code != 200 {
				t.Errorf("client without a certificate: %d %v, want 200", code, err)
			}
			if code, err := try(expired); err == nil {
				t.Errorf("client with an expired certificate: %d, want a failed handshake", code)
			}
			refused := map[string]float64{"require": 3, "optional": 2}[mode]
			testutil.WaitFor(t, 3*time.Second, "the refusals counted bad_certificate", func() bool {
				v, _ := gathered(t, s.testGateway).value("sluice_tls_handshake_errors_total", map[string]string{"reason": "bad_certificate"})
				return v == refused
			})
			l := s.accessLines(1)[0]
			if l["client_cert_subject"] != "CN=svc-billing" {
				t.Errorf("access log client_cert_subject = %v", l["client_cert_subject"])
			}
		})
	}
}

func tlsCert(certPEM, keyPEM []byte) (tls.Certificate, error) {
	return tls.X509KeyPair(certPEM, keyPEM)
}

// TestRedirectHTTPS: a redirect_https listener answers 308 to the HTTPS URL, a valid URL
// for an IPv6 literal host and for "OPTIONS *" too.
func TestRedirectHTTPS(t *testing.T) {
	for _, tc := range []struct {
		name, port, req, want string
	}{
		{"name", "8443", "POST /pay?x=1 HTTP/1.1\r\nHost: shop.example:80\r\nContent-Length: 0\r\n\r\n", "https://shop.example:8443/pay?x=1"},
		{"port 443", "443", "GET /a HTTP/1.1\r\nHost: shop.example\r\n\r\n", "https://shop.example/a"},
		{"IPv6 with port", "8443", "GET /a HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", "https://[::1]:8443/a"},
		{"IPv6", "8443", "GET /a HTTP/1.1\r\nHost: [::1]\r\n\r\n", "https://[::1]:8443/a"},
		{"IPv6 port 443", "443", "GET /a HTTP/1.1\r\nHost: [2001:db8::1]:80\r\n\r\n", "https://[2001:db8::1]/a"},
		{"asterisk", "8443", "OPTIONS * HTTP/1.1\r\nHost: shop.example\r\n\r\n", "https://shop.example:8443/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, redirect_https: {port: {{port}}}}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": hostport(echoBackend(t, "a")), "port": tc.port})
			c, err := net.Dial("tcp", tg.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			io.WriteString(c, tc.req)
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 308 || resp.Header.Get("Location") != tc.want {
				t.Fatalf("got %d Location %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), tc.want)
			}
		})
	}
}

// TestRedirectHTTPSOverH2C: a redirecting listener that also serves h2c redirects HTTP/2
// requests too (a GET, a POST with its body), logged as HTTP/1.1's are; the backend is
// never reached over plain HTTP.
func TestRedirectHTTPSOverH2C(t *testing.T) {
	var hits atomic.Int32
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	t.Cleanup(be.Close)
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, redirect_https: {port: 8443}, protocols: [http1, h2c]}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": hostport(be)})
	c := h2cClient()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	defer c.CloseIdleConnections()
	for i, tc := range []struct{ method, path, body string }{
		{"GET", "/secret?x=1", ""},
		{"POST", "/pay", "card=4111"},
	} {
		req, _ := http.NewRequest(tc.method, "http://shop.example"+tc.path, strings.NewReader(tc.body))
		req.URL.Host = tg.addr
		req.Host = "shop.example"
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if want := "https://shop.example:8443" + tc.path; resp.ProtoMajor != 2 || resp.StatusCode != 308 || resp.Header.Get("Location") != want {
			t.Errorf("%s %s: %s %d Location %q, want HTTP/2 308 %q", tc.method, tc.path, resp.Proto, resp.StatusCode, resp.Header.Get("Location"), want)
		}
		if l := tg.accessLines(i + 1)[i]; l["status"] != float64(308) || l["http_version"] != "HTTP/2" || l["route"] != "" {
			t.Errorf("%s %s: access log status %v http_version %v route %v, want 308 HTTP/2 and no route", tc.method, tc.path, l["status"], l["http_version"], l["route"])
		}
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("the backend served %d requests over plain HTTP, want none", n)
	}
}

// TestTLSSessionResumption: a client that kept its session ticket resumes (no full
// handshake) on its next connection; both kinds are counted and logged.
func TestTLSSessionResumption(t *testing.T) {
	s := startTLSSite(t, "")
	cfg := s.ca.ClientConfig("a.test")
	cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
	for i := range 2 {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}}
		resp, err := c.Get("https://" + s.addr + "/")
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resumed := resp.TLS.DidResume; resumed != (i == 1) {
			t.Fatalf("connection %d: resumed %v", i, resumed)
		}
	}
	lines := s.accessLines(2)
	if lines[0]["tls_resumed"] != false || lines[1]["tls_resumed"] != true {
		t.Errorf("access log tls_resumed: %v, %v", lines[0]["tls_resumed"], lines[1]["tls_resumed"])
	}
	f := gathered(t, s.testGateway)
	full, _ := f.value("sluice_tls_handshakes_total", map[string]string{"resumed": "false"})
	resumed, _ := f.value("sluice_tls_handshakes_total", map[string]string{"resumed": "true"})
	if full != 1 || resumed != 1 {
		t.Errorf("handshakes full %v resumed %v, want 1 and 1", full, resumed)
	}
}

// mtlsCerts makes a server certificate for a.test (cert, key, by ca) and a client
// certificate for svc-billing by clientCA.
func mtlsCerts(t *testing.T) (ca, clientCA *testutil.CA, cert, key string, billing tls.Certificate) {
	t.Helper()
	ca, clientCA = testutil.NewCA(t), testutil.NewCA(t)
	cert, key = ca.Issue(t, "s", testutil.CertOptions{DNSNames: []string{"a.test"}})
	billing, err := tlsCert(clientCA.IssuePEM(t, testutil.CertOptions{CommonName: "svc-billing", Client: true}))
	if err != nil {
		t.Fatal(err)
	}
	return ca, clientCA, cert, key, billing
}

// getOnce gets path from addr on a new connection made with cfg (whose session cache
// makes it resume when it can) and reports whether the session was resumed.
func getOnce(addr string, cfg *tls.Config, path string) (resumed bool, err error) {
	c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 5 * time.Second}
	resp, err := c.Get("https://" + addr + path)
	if err != nil {
		return false, err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.TLS.DidResume, nil
}

// TestTLSResumptionAcrossReload: a config reload keeps the listener's session ticket keys,
// so clients resume across it (TLS 1.2 and 1.3), the resumed session keeping its verified
// client certificate; a reload that changes the client CAs makes a session of the old CA's
// certificate useless: no resumption, and the certificate fails the full handshake.
func TestTLSResumptionAcrossReload(t *testing.T) {
	ca, clientCA, cert, key, billing := mtlsCerts(t)
	otherCA := testutil.NewCA(t)
	const y = `
listeners:
  - {address: 127.0.0.1:0, tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}], client_auth: optional, client_ca_file: {{ca}}}}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: {{r}}, upstream: b}]
`
	vars := map[string]string{"c": cert, "k": key, "ca": clientCA.CAFile(t), "b": hostport(echoBackend(t, "a")), "r": "r0"}
	tg := startGateway(t, y, vars)
	reload := func() {
		t.Helper()
		vars["r"] += "x" // a change of the config, none of the listener
		if err := tg.gw.Apply(mustParse(t, y, vars)); err != nil {
			t.Fatal(err)
		}
	}
	logged := 0
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		cfg := ca.ClientConfig("a.test")
		cfg.MaxVersion, cfg.Certificates = v, []tls.Certificate{billing}
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		get := func() (resumed bool, err error) {
			c := &http.Client{Transport: &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}, Timeout: 5 * time.Second}
			resp, err := c.Get("https://" + tg.addr + "/")
			if err != nil {
				return false, err
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			logged++
			if l := tg.accessLines(logged)[logged-1]; l["client_cert_subject"] != "CN=svc-billing" {
				t.Errorf("%s: client_cert_subject %v", tls.VersionName(v), l["client_cert_subject"])
			}
			return resp.TLS.DidResume, nil
		}
		if _, err := get(); err != nil {
			t.Fatal(err)
		}
		reload()
		if resumed, err := get(); !resumed || err != nil {
			t.Errorf("%s: after a reload: resumed %v, %v; want resumed", tls.VersionName(v), resumed, err)
		}
		vars["ca"] = otherCA.CAFile(t)
		reload()
		if resumed, err := get(); err == nil {
			t.Errorf("%s: after the client CAs changed: served (resumed %v); want the old CA's certificate refused", tls.VersionName(v), resumed)
		}
		vars["ca"] = clientCA.CAFile(t)
		reload()
	}
}

// TestTLSResumptionAcrossClientAuthChange: a reload that changes client_auth applies to
// resumed sessions (the ticket keys carry over, the policy must not): under require a
// session made without a certificate is not resumed, and one made with a certificate is not
// resumed under none, where no subject is logged (TLS 1.2 and 1.3).
func TestTLSResumptionAcrossClientAuthChange(t *testing.T) {
	ca, clientCA, cert, key, billing := mtlsCerts(t)
	const y = `
listeners:
  - {address: 127.0.0.1:0, tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}], client_auth: {{mode}}, client_ca_file: {{ca}}}}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		for _, tc := range []struct {
			from, to string
			certs    []tls.Certificate
		}{
			{"optional", "require", nil},
			{"optional", "none", []tls.Certificate{billing}},
		} {
			vars := map[string]string{"c": cert, "k": key, "ca": clientCA.CAFile(t), "b": hostport(echoBackend(t, "a")), "mode": tc.from}
			tg := startGateway(t, y, vars)
			cfg := ca.ClientConfig("a.test")
			cfg.MaxVersion, cfg.Certificates = v, tc.certs
			cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
			name := fmt.Sprintf("%s %s to %s", tls.VersionName(v), tc.from, tc.to)
			if _, err := getOnce(tg.addr, cfg, "/before"); err != nil {
				t.Fatalf("%s: before the reload: %v", name, err)
			}
			vars["mode"] = tc.to
			if err := tg.gw.Apply(mustParse(t, y, vars)); err != nil {
				t.Fatal(err)
			}
			resumed, err := getOnce(tg.addr, cfg, "/after")
			switch {
			case tc.to == "require" && err == nil:
				t.Errorf("%s: a session without a certificate: served (resumed %v), want refused", name, resumed)
			case tc.to == "none" && (err != nil || resumed):
				t.Errorf("%s: a session with a certificate: resumed %v, %v; want a full handshake", name, resumed, err)
			case tc.to == "none":
				for _, l := range tg.accessLines(2) {
					if l["path"] == "/after" && l["client_cert_subject"] != nil {
						t.Errorf("%s: client_cert_subject %v logged, want none", name, l["client_cert_subject"])
					}
				}
			}
		}
	}
}

// TestClientCAFileReplaced: a client_ca_file replaced on disk verifies from the next
// handshakes on, without a reload: a certificate of the CA taken out fails a new handshake,
// and its session is not resumed (TLS 1.2 and 1.3); the new CA's certificate is served and
// resumes.
func TestClientCAFileReplaced(t *testing.T) {
	ca, oldCA, newCA := testutil.NewCA(t), testutil.NewCA(t), testutil.NewCA(t)
	cert, key := ca.Issue(t, "s", testutil.CertOptions{DNSNames: []string{"a.test"}})
	clientOf := func(c *testutil.CA, cn string) tls.Certificate {
		cc, err := tlsCert(c.IssuePEM(t, testutil.CertOptions{CommonName: cn, Client: true}))
		if err != nil {
			t.Fatal(err)
		}
		return cc
	}
	oldCert, newCert := clientOf(oldCA, "svc-old"), clientOf(newCA, "svc-new")
	caFile := filepath.Join(t.TempDir(), "clients.crt")
	testutil.WriteFile(t, caFile, oldCA.CertPEM)
	tg := startGateway(t, `
listeners:
  - {address: 127.0.0.1:0, tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}], client_auth: require, client_ca_file: {{ca}}}}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"c": cert, "k": key, "ca": caFile, "b": hostport(echoBackend(t, "a"))})
	newClient := func(v uint16, cc tls.Certificate) *tls.Config {
		cfg := ca.ClientConfig("a.test")
		cfg.MaxVersion, cfg.Certificates = v, []tls.Certificate{cc}
		cfg.ClientSessionCache = tls.NewLRUClientSessionCache(4)
		return cfg
	}
	get := func(cfg *tls.Config) (resumed bool, err error) { return getOnce(tg.addr, cfg, "/") }
	versions := []uint16{tls.VersionTLS12, tls.VersionTLS13}
	var old []*tls.Config // with a session of the old CA's certificate each
	for _, v := range versions {
		c := newClient(v, oldCert)
		if _, err := get(c); err != nil {
			t.Fatalf("%s: the old CA's certificate before the change: %v", tls.VersionName(v), err)
		}
		old = append(old, c)
	}
	testutil.WriteFile(t, caFile, newCA.CertPEM)
	testutil.WaitFor(t, 15*time.Second, "the new client CA in force", func() bool {
		_, err := get(newClient(tls.VersionTLS13, newCert))
		return err == nil
	})
	for i, v := range versions {
		if resumed, err := get(old[i]); err == nil {
			t.Errorf("%s: the old CA's certificate after the change: served (resumed %v), want refused", tls.VersionName(v), resumed)
		}
		if _, err := get(newClient(v, oldCert)); err == nil {
			t.Errorf("%s: a new handshake with the old CA's certificate: served, want refused", tls.VersionName(v))
		}
		c := newClient(v, newCert)
		get(c)
		if resumed, err := get(c); !resumed || err != nil {
			t.Errorf("%s: the new CA's certificate: resumed %v, %v; want resumed", tls.VersionName(v), resumed, err)
		}
	}
}

// TestCertExpiryOfRemovedFile: a reload that takes a certificate file out of the config
// drops its expiry series (else the documented expiry alert fires for a certificate no
// longer served); the files still in force keep theirs.
func TestCertExpiryOfRemovedFile(t *testing.T) {
	ca := testutil.NewCA(t)
	certA, keyA := ca.Issue(t, "a", testutil.CertOptions{DNSNames: []string{"a.test"}})
	certB, keyB := ca.Issue(t, "b", testutil.CertOptions{DNSNames: []string{"b.test"}})
	const y = `
listeners: [{address: 127.0.0.1:0, tls: {certificates: [{{certs}}]}}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`
	pair := func(c, k string) string { return fmt.Sprintf("{cert_file: %s, key_file: %s}", c, k) }
	vars := map[string]string{"certs": pair(certA, keyA) + ", " + pair(certB, keyB), "b": hostport(echoBackend(t, "a"))}
	tg := startGateway(t, y, vars)
	const name = "sluice_tls_certificate_expiry_timestamp_seconds"
	has := func(file string) bool {
		_, ok := gathered(t, tg).value(name, map[string]string{"cert_file": file})
		return ok
	}
	if !has(certA) || !has(certB) {
		t.Fatalf("expiry series of a %v, b %v; want both", has(certA), has(certB))
	}
	vars["certs"] = pair(certB, keyB)
	if err := tg.gw.Apply(mustParse(t, y, vars)); err != nil {
		t.Fatal(err)
	}
	if has(certA) || !has(certB) {
		t.Errorf("after a reload without a: expiry series of a %v, b %v; want b only", has(certA), has(certB))
	}
}

// TestRoutesMatchTLS: routes can require an SNI (case-insensitive, as names are), a verified
// client certificate's subject or a TLS version; plain HTTP has none of them.
func TestRoutesMatchTLS(t *testing.T) {
	ca, clientCA := testutil.NewCA(t), testutil.NewCA(t)
	cert, key := ca.Issue(t, "s", testutil.CertOptions{DNSNames: []string{"a.test", "b.test"}})
	billing, err := tlsCert(clientCA.IssuePEM(t, testutil.CertOptions{CommonName: "svc-billing", Client: true}))
	if err != nil {
		t.Fatal(err)
	}
	be := func(name string) string { return hostport(echoBackend(t, name)) }
	tg := startGateway(t, `
listeners:
  - {address: 127.0.0.1:0, tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}], client_auth: optional, client_ca_file: {{ca}}}}
upstreams:
  - {id: billing, targets: [{address: {{billing}}}]}
  - {id: sni-b, targets: [{address: {{snib}}}]}
  - {id: rest, targets: [{address: {{rest}}}]}
routes:
  - {id: billing, match: {tls: [{name: client_cert_subject, regex: "^CN=svc-billing$"}]}, upstream: billing}
  - {id: sni-b, match: {tls: [{name: sni, exact: B.test}, {name: version, exact: TLS 1.3}]}, upstream: sni-b}
  - {id: rest, upstream: rest}
`, map[string]string{"c": cert, "k": key, "ca": clientCA.CAFile(t), "billing": be("billing"), "snib": be("sni-b"), "rest": be("rest")})
	for _, tc := range []struct {
		sni   string
		certs []tls.Certificate
		want  string
	}{
		{"a.test", nil, "rest"}, {"b.test", nil, "sni-b"}, {"a.test", []tls.Certificate{billing}, "billing"},
		{"b.test", []tls.Certificate{billing}, "billing"}, {"B.Test", nil, "sni-b"},
	} {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: func() *tls.Config {
			cfg := ca.ClientConfig(tc.sni)
			cfg.Certificates = tc.certs
			return cfg
		}()}}
		resp, info := getEcho(t, c, mustRequest(t, "https://"+tg.addr+"/x"))
		resp.Body.Close()
		if info.Backend != tc.want {
			t.Errorf("SNI %s, client certs %d: served by %q, want %q", tc.sni, len(tc.certs), info.Backend, tc.want)
		}
	}
}

func mustRequest(t *testing.T, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	return req
}
