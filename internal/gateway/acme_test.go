package gateway

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
	"sluice/internal/upstream/discovery/dnstest"
)

// pebble is a real ACME CA (github.com/letsencrypt/pebble, run as a Go tool) on loopback,
// validating TLS-ALPN-01 on tlsPort and resolving names with its own DNS server.
type pebble struct {
	dir     string // its directory URL
	caFile  string // trusts pebble's HTTPS API
	out     *syncBuffer
	dns     *dnstest.Server
	stopped chan struct{}
}

// startPebble runs pebble validating TLS-ALPN-01 on tlsPort and HTTP-01 on httpPort (0: a
// port nothing listens on).
func startPebble(t *testing.T, tlsPort, httpPort int) *pebble {
	t.Helper()
	dns, err := dnstest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	p := runPebble(t, tlsPort, httpPort, dns.Addr, 7776000)
	p.dns = dns
	return p
}

// runPebble runs pebble resolving names (and DNS-01 challenge records) with the DNS server
// at dnsAddr, issuing certificates valid for validity seconds.
func runPebble(t *testing.T, tlsPort, httpPort int, dnsAddr string, validity int) *pebble {
	t.Helper()
	ca := testutil.NewCA(t)
	cert, key := ca.Issue(t, "pebble", testutil.CertOptions{DNSNames: []string{"localhost"}})
	api, mgmt := testutil.FreePort(t), testutil.FreePort(t)
	if httpPort == 0 {
		httpPort = testutil.FreePort(t)
	}
	cfg := fmt.Sprintf(`{"pebble": {"listenAddress": "127.0.0.1:%d", "managementListenAddress": "127.0.0.1:%d",
  "certificate": %q, "privateKey": %q, "httpPort": %d, "tlsPort": %d, "ocspResponderURL": "",
  "externalAccountBindingRequired": false, "retryAfter": {"authz": 1, "order": 1}, "keyAlgorithm": "ecdsa",
  "profiles": {"default": {"description": "default", "validityPeriod": %d}}}}`, api, mgmt, cert, key, httpPort, tlsPort, validity)
	cfgFile := filepath.Join(t.TempDir(), "pebble.json")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	p := &pebble{dir: fmt.Sprintf("https://localhost:%d/dir", api), caFile: ca.CAFile(t), out: &syncBuffer{}, stopped: make(chan struct{})}
	// Built, then run: killing "go tool pebble" would leave pebble itself running.
	bin := filepath.Join(t.TempDir(), "pebble")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/letsencrypt/pebble/v2/cmd/pebble").CombinedOutput(); err != nil {
		t.Fatalf("build pebble: %v\n%s", err, out)
	}
	cmd := exec.Command(bin, "-config", cfgFile, "-dnsserver", dnsAddr)
	cmd.Env = append(os.Environ(), "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0")
	cmd.Stdout, cmd.Stderr = p.out, p.out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start pebble: %v", err)
	}
	go func() { cmd.Wait(); close(p.stopped) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-p.stopped })
	testutil.WaitFor(t, 30*time.Second, "pebble to listen", func() bool {
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", api))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

// startPebbleFor skips under -short, else starts pebble validating TLS-ALPN-01 on a free
// port, which it returns, with name resolving to 127.0.0.1.
func startPebbleFor(t *testing.T, name string) (*pebble, int) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs pebble")
	}
	port := testutil.FreePort(t)
	p := startPebble(t, port, 0)
	p.dns.SetA(name, 60, "127.0.0.1")
	return p, port
}

// issuerOf is the issuer's common name of the certificate served at addr for serverName.
func issuerOf(addr, serverName string) (string, error) {
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		return "", err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].Issuer.CommonName, nil
}

// issued counts the certificates pebble issued so far.
func (p *pebble) issued() int { return strings.Count(p.out.String(), "Issued certificate serial") }

// TestACMEObtainsAndShares: a TLS listener with an acme block gets its certificate from a
// real ACME CA (pebble) through the TLS-ALPN-01 challenge on the listener itself, serves it,
// and a second instance sharing the storage directory loads it instead of ordering again.
func TestACMEObtainsAndShares(t *testing.T) {
	p, port := startPebbleFor(t, "acme.test")
	storage := t.TempDir()
	const cfg = `
listeners:
  - address: 127.0.0.1:{{port}}
    tls:
      acme: {domains: [acme.test], email: ops@acme.test, ca: "{{ca}}", ca_root: {{root}}, storage: {{storage}}, agree_tos: true}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`
	vars := map[string]string{"port": fmt.Sprint(port), "ca": p.dir, "root": p.caFile, "storage": storage, "b": hostport(echoBackend(t, "a"))}
	tg := startGateway(t, cfg, vars)
	issuer := func(addr string) string {
		is, _ := issuerOf(addr, "acme.test")
		return is
	}
	testutil.WaitFor(t, 60*time.Second, "a certificate from pebble", func() bool { return strings.Contains(issuer(tg.addr), "Pebble") })
	if n := p.issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}
	if v, _ := gathered(t, tg).value("sluice_tls_acme_events_total", map[string]string{"event": "cert_obtained"}); v != 1 {
		t.Errorf("sluice_tls_acme_events_total{cert_obtained} = %v", v)
	}

	// No certificate on demand: a name the acme block does not list (one that pebble would
	// validate: it resolves here) gets a failed handshake, and nothing is ordered for it.
	p.dns.SetA("other.acme.test", 60, "127.0.0.1")
	if is, err := issuerOf(tg.addr, "other.acme.test"); err == nil {
		t.Errorf("other.acme.test: a certificate from %q, want a failed handshake", is)
	}

	// A second instance on the same storage: it loads the certificate, pebble issues none.
	vars2 := map[string]string{}
	for k, v := range vars {
		vars2[k] = v
	}
	vars2["port"] = fmt.Sprint(testutil.FreePort(t))
	tg2 := startGateway(t, cfg, vars2)
	testutil.WaitFor(t, 30*time.Second, "the second instance to serve the shared certificate", func() bool { return strings.Contains(issuer(tg2.addr), "Pebble") })
	if n := p.issued(); n != 1 {
		t.Errorf("after a second instance pebble issued %d certificates, want still 1", n)
	}
}

// TestACMEHTTPChallenge: with a plain listener in the config, the HTTP-01 challenge is
// answered there (pebble validates HTTP-01 on it and cannot reach TLS-ALPN-01 here), and
// the plain listener still redirects everything else to HTTPS.
func TestACMEHTTPChallenge(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pebble")
	}
	tlsPort, httpPort := testutil.FreePort(t), testutil.FreePort(t)
	p := startPebble(t, testutil.FreePort(t), httpPort) // TLS-ALPN-01 goes nowhere: only HTTP-01 can pass
	p.dns.SetA("web.test", 60, "127.0.0.1")
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:{{tls}}
    tls:
      acme: {domains: [web.test], ca: "{{ca}}", ca_root: {{root}}, storage: {{storage}}, agree_tos: true}
  - address: 127.0.0.1:{{http}}
    redirect_https: {port: 443}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"tls": fmt.Sprint(tlsPort), "http": fmt.Sprint(httpPort), "ca": p.dir, "root": p.caFile,
		"storage": t.TempDir(), "b": hostport(echoBackend(t, "a"))})
	testutil.WaitFor(t, 90*time.Second, "a certificate from pebble through HTTP-01", func() bool {
		c, err := tls.Dial("tcp", tg.addrOf(tlsPort), &tls.Config{ServerName: "web.test", InsecureSkipVerify: true})
		if err != nil {
			return false
		}
		defer c.Close()
		return strings.Contains(c.ConnectionState().PeerCertificates[0].Issuer.CommonName, "Pebble")
	})
	out := rawExchange(t, fmt.Sprintf("127.0.0.1:%d", httpPort), "GET /x HTTP/1.1\r\nHost: web.test\r\n\r\n", 3*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.1 308") {
		t.Errorf("a plain request on the redirecting listener: %q", firstLine(out))
	}
}

// addrOf is the gateway's bound address on port.
func (tg *testGateway) addrOf(port int) string { return fmt.Sprintf("127.0.0.1:%d", port) }

// TestACMEDNS01Wildcard: a wildcard name is obtained through the DNS-01 challenge: Sluice
// adds the challenge record to a real DNS server with a TSIG-signed RFC 2136 update, pebble
// (which can reach neither TLS-ALPN-01 nor HTTP-01 here) reads it from that server, the
// certificate for *.dns01.test is served for any name one label under it, and the record is
// removed afterwards.
func TestACMEDNS01Wildcard(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pebble")
	}
	const secret = "c2x1aWNlLWFjbWUtZG5zMDEtdGVzdC1zZWNyZXQ="
	dns := testutil.NewDNSUpdateServer(t, "dns01.test", "sluice-acme", secret)
	p := runPebble(t, testutil.FreePort(t), testutil.FreePort(t), dns.Addr, 7776000) // nothing answers TLS-ALPN-01 or HTTP-01
	port := testutil.FreePort(t)
	// A certificate from files too: names under the wildcard must still go to ACME.
	cert, key := testutil.NewCA(t).Issue(t, "static", testutil.CertOptions{DNSNames: []string{"static.test"}})
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:{{port}}
    tls:
      certificates: [{cert_file: {{cert}}, key_file: {{key}}}]
      acme:
        domains: ["*.dns01.test"]
        ca: "{{ca}}"
        ca_root: {{root}}
        storage: {{storage}}
        agree_tos: true
        dns01: {server: "{{dns}}", tsig_key: sluice-acme, tsig_secret: "{{secret}}", propagation_timeout: 20s}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"port": fmt.Sprint(port), "ca": p.dir, "root": p.caFile, "storage": t.TempDir(),
		"dns": dns.Addr, "secret": secret, "cert": cert, "key": key, "b": hostport(echoBackend(t, "a"))})
	var names []string
	testutil.WaitFor(t, 90*time.Second, "a wildcard certificate from pebble through DNS-01", func() bool {
		c, err := tls.Dial("tcp", tg.addrOf(port), &tls.Config{ServerName: "api.dns01.test", InsecureSkipVerify: true})
		if err != nil {
			return false
		}
		defer c.Close()
		leaf := c.ConnectionState().PeerCertificates[0]
		names = leaf.DNSNames
		return strings.Contains(leaf.Issuer.CommonName, "Pebble")
	})
	if len(names) != 1 || names[0] != "*.dns01.test" {
		t.Errorf("certificate names %q, want [*.dns01.test]", names)
	}
	c, err := tls.Dial("tcp", tg.addrOf(port), &tls.Config{ServerName: "other.dns01.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("another name under the wildcard: %v", err)
	}
	c.Close()
	if n := p.issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}
	// The challenge record was added (signed) and removed again.
	testutil.WaitFor(t, 10*time.Second, "the challenge record to be removed", func() bool {
		return len(dns.TXT("_acme-challenge.dns01.test")) == 0
	})
	if acc, ref := dns.Updates(); acc < 2 || ref != 0 {
		t.Errorf("DNS server: %d updates applied, %d refused; want an add and a removal, none refused", acc, ref)
	}
}

// TestACMECertificateServedAcrossReload: a config reload that leaves the acme block alone
// keeps the listener's ACME manager (its cache and renewal schedule); one that changes it
// builds a new manager, which serves the certificate in storage from its first handshake,
// not only once it has loaded it in the background.
func TestACMECertificateServedAcrossReload(t *testing.T) {
	p, port := startPebbleFor(t, "acme.test")
	const cfg = `
listeners:
  - address: 127.0.0.1:{{port}}
    tls:
      acme: {domains: [acme.test], email: {{email}}, ca: "{{ca}}", ca_root: {{root}}, storage: {{storage}}, agree_tos: true}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: {{route}}, upstream: b}]
`
	vars := map[string]string{"port": fmt.Sprint(port), "ca": p.dir, "root": p.caFile, "storage": t.TempDir(),
		"b": hostport(echoBackend(t, "a")), "route": "r0", "email": "ops@acme.test"}
	tg := startGateway(t, cfg, vars)
	issuer := func() (string, error) { return issuerOf(tg.addr, "acme.test") }
	testutil.WaitFor(t, 60*time.Second, "a certificate from pebble", func() bool {
		is, _ := issuer()
		return strings.Contains(is, "Pebble")
	})
	first := tg.gw.edge.acme[0]
	for i := range 10 {
		if i == 5 {
			vars["email"] = "other@acme.test" // from here on a new manager
		}
		vars["route"] = fmt.Sprintf("r%d", i+1)
		if err := tg.gw.Apply(mustParse(t, cfg, vars)); err != nil {
			t.Fatal(err)
		}
		if kept := tg.gw.edge.acme[0] == first; kept != (i < 5) {
			t.Fatalf("reload %d: manager kept %v", i+1, kept)
		}
		if is, err := issuer(); err != nil || !strings.Contains(is, "Pebble") {
			t.Fatalf("handshake right after reload %d: issuer %q, %v", i+1, is, err)
		}
	}
	// A new manager serves the certificate before anything runs in the background.
	vars["email"] = "third@acme.test"
	e, err := tg.gw.buildEdgeTLS(mustParse(t, cfg, vars))
	if err != nil {
		t.Fatal(err)
	}
	conn, peer := net.Pipe() // certmagic logs the handshake's remote address
	_, err = e.configs["127.0.0.1:"+vars["port"]].GetCertificate(&tls.ClientHelloInfo{ServerName: "acme.test", Conn: conn})
	conn.Close()
	peer.Close()
	e.close(tg.gw.edge)
	if err != nil {
		t.Fatalf("a new manager's certificate for acme.test: %v", err)
	}
	if n := p.issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}
}

// TestACMEWithCertificatesRejectsUnknown: a listener with certificates, an acme block and
// unknown_sni: reject gets its ACME certificate (the TLS-ALPN-01 challenge is not refused
// for its unknown name), serves both, and answers a name neither covers with the
// unrecognized_name alert.
func TestACMEWithCertificatesRejectsUnknown(t *testing.T) {
	p, port := startPebbleFor(t, "acme.test")
	ca := testutil.NewCA(t)
	cert, key := ca.Issue(t, "a", testutil.CertOptions{DNSNames: []string{"a.test"}})
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:{{port}}
    tls:
      certificates: [{cert_file: {{c}}, key_file: {{k}}}]
      unknown_sni: reject
      acme: {domains: [acme.test], email: ops@acme.test, ca: "{{ca}}", ca_root: {{root}}, storage: {{storage}}, agree_tos: true}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"port": fmt.Sprint(port), "c": cert, "k": key, "ca": p.dir, "root": p.caFile, "storage": t.TempDir(),
		"b": hostport(echoBackend(t, "a"))})
	testutil.WaitFor(t, 60*time.Second, "a certificate from pebble", func() bool {
		is, _ := issuerOf(tg.addr, "acme.test")
		return strings.Contains(is, "Pebble")
	})
	if is, err := issuerOf(tg.addr, "a.test"); err != nil || strings.Contains(is, "Pebble") {
		t.Errorf("a.test: issuer %q (%v), want the file's certificate", is, err)
	}
	_, err := issuerOf(tg.addr, "unknown.example")
	var oe *net.OpError
	if !errors.As(err, &oe) || oe.Op != "remote error" || oe.Err.Error() != tls.AlertError(112).Error() {
		t.Errorf("unknown.example: %v, want the alert %q", err, tls.AlertError(112).Error())
	}
}

// TestACMEChallengePathOwned: on a plain listener, a request under
// /.well-known/acme-challenge/ for a name an acme block lists (any case, with a port) is
// the gateway's even when no challenge is pending for its token: 404
// acme_challenge_unknown, logged and counted, and the route's backend never sees it (a
// backend answering there could prove control of the name to a CA for another account).
// For other names the path is routed as any other (a backend with its own ACME client).
// No CA is needed: no challenge is pending.
func TestACMEChallengePathOwned(t *testing.T) {
	var hits atomic.Int32
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("backend " + r.Host))
	}))
	t.Cleanup(backend.Close)
	tlsPort, httpPort := testutil.FreePort(t), testutil.FreePort(t)
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:{{tls}}
    tls:
      acme: {domains: [web.test], ca: "https://127.0.0.1:{{dead}}/dir", storage: {{storage}}, agree_tos: true}
  - address: 127.0.0.1:{{http}}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"tls": fmt.Sprint(tlsPort), "http": fmt.Sprint(httpPort), "dead": fmt.Sprint(testutil.FreePort(t)),
		"storage": t.TempDir(), "b": hostport(backend)})
	plain := fmt.Sprintf("127.0.0.1:%d", httpPort)
	for _, tc := range []struct {
		name, req string
		routed    bool
	}{
		{"unknown token", "GET /.well-known/acme-challenge/dGVzdA HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n", false},
		{"upper case, port", "GET /.well-known/acme-challenge/dGVzdA HTTP/1.1\r\nHost: WEB.test:80\r\nConnection: close\r\n\r\n", false},
		{"POST", "POST /.well-known/acme-challenge/dGVzdA HTTP/1.1\r\nHost: web.test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", false},
		{"no token", "GET /.well-known/acme-challenge/ HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n", false},
		{"another name", "GET /.well-known/acme-challenge/dGVzdA HTTP/1.1\r\nHost: other.test\r\nConnection: close\r\n\r\n", true},
		{"another path", "GET /.well-known/other HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := hits.Load()
			out := rawExchange(t, plain, tc.req, 3*time.Second)
			if tc.routed {
				if !strings.HasPrefix(out, "HTTP/1.1 200") || hits.Load() != before+1 {
					t.Errorf("answer %q, backend hits %d; want it routed", firstLine(out), hits.Load()-before)
				}
				return
			}
			if !strings.HasPrefix(out, "HTTP/1.1 404") || !strings.Contains(out, "X-Sluice-Error: acme_challenge_unknown") || hits.Load() != before {
				t.Errorf("answer %q, backend hits %d; want 404 acme_challenge_unknown, not routed", out, hits.Load()-before)
			}
		})
	}
	if v, _ := gathered(t, tg).value("sluice_gateway_errors_total", map[string]string{"reason": "acme_challenge_unknown"}); v != 4 {
		t.Errorf("sluice_gateway_errors_total{acme_challenge_unknown} = %v, want 4", v)
	}
	lines := tg.accessLines(6)
	if r, _ := lines[0]["reason"].(string); r != "acme_challenge_unknown" {
		t.Errorf("access log line %v: want reason acme_challenge_unknown", lines[0])
	}
}

// TestACMERenewsExpiredAtStart: a gateway that starts with an expired certificate in
// storage (down past its expiry, or restarted after the cause of failed renewals was fixed)
// serves it from its first handshake and renews it at once, without waiting for the first
// maintenance check (10 minutes in); the renewed one is served from the next handshake, and a
// connection made before goes on.
func TestACMERenewsExpiredAtStart(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs pebble")
	}
	port := testutil.FreePort(t)
	dns, err := dnstest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(dns.Close)
	dns.SetA("acme.test", 60, "127.0.0.1")
	p := runPebble(t, port, 0, dns.Addr, 5) // certificates valid for 5 s
	const cfg = acmeOnlyConfig
	vars := map[string]string{"port": fmt.Sprint(port), "ca": p.dir, "root": p.caFile, "storage": t.TempDir(),
		"b": hostport(echoBackend(t, "a")), "domains": "acme.test"}
	leaf := func(tg *testGateway) *x509.Certificate {
		c, err := tls.Dial("tcp", tg.addr, &tls.Config{ServerName: "acme.test", InsecureSkipVerify: true})
		if err != nil {
			return nil
		}
		defer c.Close()
		return c.ConnectionState().PeerCertificates[0]
	}
	first := startGateway(t, cfg, vars)
	testutil.WaitFor(t, 60*time.Second, "a certificate from pebble", func() bool { return leaf(first) != nil })
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	first.gw.Shutdown(ctx)
	expiry := firstExpiry(t, vars["storage"])
	testutil.WaitFor(t, 30*time.Second, "the certificate to expire", func() bool { return time.Now().After(expiry) })
	tg := startGateway(t, cfg, vars)
	old := leaf(tg)
	if old == nil || !time.Now().After(old.NotAfter) {
		t.Fatalf("the first handshake after the start: %v, want the expired certificate in storage", old)
	}
	// A connection made with the expired certificate goes on across the renewal.
	kc, err := tls.Dial("tcp", tg.addr, &tls.Config{ServerName: "acme.test", InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	br := bufio.NewReader(kc)
	get := func() error {
		kc.SetDeadline(time.Now().Add(5 * time.Second))
		fmt.Fprintf(kc, "GET / HTTP/1.1\r\nHost: acme.test\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return err
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	}
	if err := get(); err != nil {
		t.Fatalf("a request before the renewal: %v", err)
	}
	testutil.WaitFor(t, 60*time.Second, "the expired certificate renewed and served", func() bool {
		c := leaf(tg)
		return c != nil && c.NotAfter.After(old.NotAfter)
	})
	if err := get(); err != nil {
		t.Errorf("a request after the renewal on the connection made before it: %v", err)
	}
	if n := p.issued(); n != 2 {
		t.Errorf("pebble issued %d certificates, want 2", n)
	}
}

// firstExpiry is the NotAfter of the one certificate in an ACME storage directory.
func firstExpiry(t *testing.T, storage string) time.Time {
	t.Helper()
	var files []string
	filepath.WalkDir(storage, func(path string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasSuffix(path, ".crt") {
			files = append(files, path)
		}
		return nil
	})
	if len(files) != 1 {
		t.Fatalf("certificates in storage: %q, want one", files)
	}
	b, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", files[0])
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c.NotAfter
}

// TestACMETwoInstancesOrderOnce: two instances started together on one empty storage
// directory: certmagic's lock in the storage lets one of them order, the other waits and
// loads what it got; both serve it and the CA issued one certificate. pebble validates on
// the first instance's port only, which answers the challenge whichever instance ordered
// (the challenge is in the storage too).
func TestACMETwoInstancesOrderOnce(t *testing.T) {
	p, port := startPebbleFor(t, "acme.test")
	const cfg = acmeOnlyConfig
	storage, b := t.TempDir(), hostport(echoBackend(t, "a"))
	var tgs [2]*testGateway
	var wg sync.WaitGroup
	for i, pt := range []int{port, testutil.FreePort(t)} {
		cfg := mustParse(t, cfg, map[string]string{"port": fmt.Sprint(pt), "ca": p.dir, "root": p.caFile, "storage": storage, "b": b,
			"domains": "acme.test"})
		gw := New(testLogger(t), nil)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			gw.Shutdown(ctx)
		})
		tgs[i] = &testGateway{gw: gw, addr: fmt.Sprintf("127.0.0.1:%d", pt), t: t}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := gw.Apply(cfg); err != nil {
				t.Errorf("apply %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
	for i, tg := range tgs {
		testutil.WaitFor(t, 90*time.Second, fmt.Sprintf("instance %d to serve a certificate from pebble", i), func() bool {
			is, _ := issuerOf(tg.addr, "acme.test")
			return strings.Contains(is, "Pebble")
		})
	}
	if n := p.issued(); n != 1 {
		t.Errorf("pebble issued %d certificates, want 1", n)
	}
}

// TestACMEReloadNames: a reload that adds a name to an acme block keeps serving the
// certificate of the name it had (read from storage by the new manager) and orders the new
// one; a reload that drops a name stops serving it (the handshake fails; nothing is ordered
// for it any more).
func TestACMEReloadNames(t *testing.T) {
	p, port := startPebbleFor(t, "acme.test")
	p.dns.SetA("new.test", 60, "127.0.0.1")
	const cfg = acmeOnlyConfig
	vars := map[string]string{"port": fmt.Sprint(port), "ca": p.dir, "root": p.caFile, "storage": t.TempDir(),
		"b": hostport(echoBackend(t, "a")), "domains": "acme.test"}
	tg := startGateway(t, cfg, vars)
	serves := func(name string) bool {
		is, _ := issuerOf(tg.addr, name)
		return strings.Contains(is, "Pebble")
	}
	testutil.WaitFor(t, 60*time.Second, "acme.test's certificate", func() bool { return serves("acme.test") })

	reload := func(domains string) {
		t.Helper()
		vars["domains"] = domains
		if err := tg.gw.Apply(mustParse(t, cfg, vars)); err != nil {
			t.Fatal(err)
		}
	}
	reload("acme.test, new.test")
	if !serves("acme.test") {
		t.Fatal("acme.test not served right after the reload that added new.test")
	}
	testutil.WaitFor(t, 60*time.Second, "new.test's certificate", func() bool { return serves("new.test") })

	reload("new.test")
	if !serves("new.test") {
		t.Error("new.test not served right after the reload that dropped acme.test")
	}
	if _, err := issuerOf(tg.addr, "acme.test"); err == nil {
		t.Error("acme.test still served after the reload that dropped it")
	}
	if n := p.issued(); n != 2 {
		t.Errorf("pebble issued %d certificates, want 2", n)
	}
}

// TestACMECAUnreachable: with the CA unreachable, the listener's file certificate is still
// served, a handshake for the ACME name fails at once (no wait for the order), and the
// failed order is logged as a warning with its cause and counted.
func TestACMECAUnreachable(t *testing.T) {
	logs := &syncBuffer{}
	tg := startWithoutCA(t, slog.New(slog.NewTextHandler(logs, nil)))
	if _, err := issuerOf(tg.addr, "a.test"); err != nil {
		t.Errorf("a.test: %v", err)
	}
	start := time.Now()
	if _, err := issuerOf(tg.addr, "acme.test"); err == nil {
		t.Error("acme.test: a certificate with no CA")
	} else if d := time.Since(start); d > 5*time.Second {
		t.Errorf("acme.test's handshake took %v to fail", d)
	}
	testutil.WaitFor(t, 20*time.Second, "the failed order counted", func() bool {
		v, _ := gathered(t, tg).value("sluice_tls_acme_events_total", map[string]string{"event": "cert_failed"})
		return v >= 1
	})
	l := logs.String()
	if !strings.Contains(l, `level=WARN msg="acme cert failed"`) || !strings.Contains(l, "connection refused") {
		t.Errorf("log lacks the failed order as a warning with its cause:\n%s", l)
	}
}

// startWithoutCA starts a gateway whose listener serves a.test from a file and lists
// acme.test in an acme block whose CA does not answer (a closed port).
func startWithoutCA(t *testing.T, log *slog.Logger) *testGateway {
	t.Helper()
	cert, key := testutil.NewCA(t).Issue(t, "a", testutil.CertOptions{DNSNames: []string{"a.test"}})
	// The storage outlives the gateway by a moment: certmagic's order against the dead CA
	// runs on its own goroutine, which the manager's Close cancels but cannot wait for, and
	// it removes its lock file as it ends. t.TempDir's removal raced it ("locks: directory
	// not empty"); this one retries until the lock is gone.
	storage, err := os.MkdirTemp("", "sluice-acme-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { // registered before the gateway's: runs after its Close
		for end := time.Now().Add(5 * time.Second); os.RemoveAll(storage) != nil && time.Now().Before(end); {
			time.Sleep(20 * time.Millisecond)
		}
	})
	return startGatewayLog(t, `
listeners:
  - address: 127.0.0.1:{{port}}
    tls:
      certificates: [{cert_file: {{c}}, key_file: {{k}}}]
      acme: {domains: [acme.test], email: ops@acme.test, ca: "https://127.0.0.1:{{dead}}/dir", storage: {{storage}}, agree_tos: true}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"port": fmt.Sprint(testutil.FreePort(t)), "dead": fmt.Sprint(testutil.FreePort(t)), "c": cert, "k": key,
		"storage": storage, "b": hostport(echoBackend(t, "a"))}, log)
}

// acmeOnlyConfig is a TLS listener whose certificates all come from the CA at {{ca}}, for the
// names {{domains}}.
const acmeOnlyConfig = `
listeners:
  - address: 127.0.0.1:{{port}}
    tls:
      acme: {domains: [{{domains}}], ca: "{{ca}}", ca_root: {{root}}, storage: {{storage}}, agree_tos: true}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`
