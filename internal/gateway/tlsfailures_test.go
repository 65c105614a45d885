package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestTLSConnectionErrorsCounted: a client connection that ends on a TLS error after its
// handshake (here a record that fails its integrity check, after a request) is counted in
// sluice_tls_connection_errors_total by listener and reason and logged at debug level with
// the reason, over HTTP/1.1 and HTTP/2; one that closes with close_notify after its request
// is neither.
func TestTLSConnectionErrorsCounted(t *testing.T) {
	ca := testutil.NewCA(t)
	cert, key := ca.Issue(t, "site", testutil.CertOptions{DNSNames: []string{"site.test"}})
	tg, logs := startGatewayLogged(t, `
listeners:
  - address: 127.0.0.1:0
    name: edge
    protocols: [http1, h2]
    tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}]}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"c": cert, "k": key, "b": hostport(echoBackend(t, "a"))})
	for i, proto := range []string{"http/1.1", "h2"} {
		for _, failing := range []bool{false, true} {
			raw, err := net.Dial("tcp", tg.addr)
			if err != nil {
				t.Fatal(err)
			}
			raw.SetDeadline(time.Now().Add(10 * time.Second))
			cfg := ca.ClientConfig("site.test")
			cfg.NextProtos = []string{proto}
			tc := tls.Client(raw, cfg)
			servedOne(t, tc, proto)
			if failing {
				raw.Write(append([]byte{23, 3, 3, 0, 20}, make([]byte, 20)...))
			} else {
				tc.CloseWrite() // close_notify
			}
			io.Copy(io.Discard, raw) // until the gateway closes
			raw.Close()
		}
		want := float64(i + 1)
		testutil.WaitFor(t, 5*time.Second, proto+": the failure counted", func() bool {
			v, _ := gathered(t, tg).value("sluice_tls_connection_errors_total", map[string]string{"listener": "edge", "reason": "bad_record_mac"})
			return v == want
		})
	}
	if mf := gathered(t, tg)["sluice_tls_connection_errors_total"]; len(mf.GetMetric()) != 1 {
		t.Errorf("sluice_tls_connection_errors_total has %d series, want bad_record_mac only: %v", len(mf.GetMetric()), mf)
	}
	var lines []string
	for l := range strings.Lines(logs.String()) {
		if strings.Contains(l, `msg="TLS connection failed"`) {
			lines = append(lines, l)
		}
	}
	if len(lines) != 2 || !strings.Contains(lines[0], "reason=bad_record_mac") || !strings.Contains(lines[1], "reason=bad_record_mac") {
		t.Errorf("log lines %q, want two with reason=bad_record_mac", lines)
	}
}

// servedOne sends a GET over tc, with proto (ALPN), and checks its 200; the connection stays
// open.
func servedOne(t *testing.T, tc *tls.Conn, proto string) {
	t.Helper()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if got := tc.ConnectionState().NegotiatedProtocol; got != proto {
		t.Fatalf("ALPN chose %q, want %q", got, proto)
	}
	cc := clientConnOver(t, tc, proto, "site.test:443")
	req, _ := http.NewRequest("GET", "https://site.test/", nil)
	resp, err := cc.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	mustStatus(t, resp, 200)
}

// TestTLSHandshakeAlertCounted: a client that aborts its handshake with an alert because it
// does not trust the certificate is counted as alert, whether crypto/tls could read the
// alert (Go's client, which says "bad certificate": it was counted bad_certificate, which
// means the client's certificate under mutual TLS; curl over TLS 1.2) or not (curl over TLS
// 1.3: OpenSSL sends it in plaintext after the server switched keys, and it failed to
// decrypt: handshake_error).
func TestTLSHandshakeAlertCounted(t *testing.T) {
	curl := requireExternal(t, "curl")
	s := startTLSSite(t, "")
	_, port, _ := net.SplitHostPort(s.addr)
	clients := []struct {
		name string
		run  func() error
	}{
		{"Go", func() error {
			c, err := tls.Dial("tcp", s.addr, &tls.Config{ServerName: "a.test", RootCAs: x509.NewCertPool()})
			if err == nil {
				c.Close()
			}
			return err
		}},
		{"curl TLS 1.3", func() error {
			return exec.Command(curl, "-sS", "--max-time", "10", "--tlsv1.3", "--resolve", "a.test:"+port+":127.0.0.1", "https://a.test:"+port+"/").Run()
		}},
		{"curl TLS 1.2", func() error {
			return exec.Command(curl, "-sS", "--max-time", "10", "--tlsv1.2", "--tls-max", "1.2", "--resolve", "a.test:"+port+":127.0.0.1", "https://a.test:"+port+"/").Run()
		}},
	}
	for i, c := range clients {
		if err := c.run(); err == nil {
			t.Fatalf("%s trusted a certificate of the test's own CA", c.name)
		}
		testutil.WaitFor(t, 5*time.Second, c.name+": the failure counted", func() bool {
			v, _ := gathered(t, s.testGateway).value("sluice_tls_handshake_errors_total", map[string]string{"listener": "https", "reason": "alert"})
			return v == float64(i+1)
		})
	}
	if mf := gathered(t, s.testGateway)["sluice_tls_handshake_errors_total"]; len(mf.GetMetric()) != 1 {
		t.Errorf("sluice_tls_handshake_errors_total: %v, want reason alert only", mf)
	}
}
