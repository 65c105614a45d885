package gateway

import (
	"crypto/tls"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestUpstreamTLSH2Reasons: HTTP/2 over TLS (protocol h2, and auto against an h2 target)
// answers a certificate that fails verification with 502 upstream_tls_certificate, as
// HTTP/1.1 does, and counts it by that reason and as a dial error; a backend that answers
// with plain HTTP, or does not agree to h2, is upstream_tls_handshake.
func TestUpstreamTLSH2Reasons(t *testing.T) {
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	b := newALPNBackend(t, ca, false, true)
	noALPN := testutil.NewBackend(t, testutil.BackendOptions{TLS: ca.ServerConfig(t, "127.0.0.1")}) // completes the handshake without ALPN
	plain := echoBackend(t, "plain")
	for _, tc := range []struct {
		name, protocol, target, tls, code, errText string
	}{
		{"h2 untrusted CA", "h2", "{{b}}", "ca_file: {{other}}, server_name: 127.0.0.1", "upstream_tls_certificate", "unknown authority"},
		{"h2 wrong name", "h2", "{{b}}", "ca_file: {{ca}}, server_name: wrong.test", "upstream_tls_certificate", "wrong.test"},
		{"h2 plain backend", "h2", "{{plain}}", "ca_file: {{ca}}, server_name: 127.0.0.1", "upstream_tls_handshake", "tls"},
		{"h2 against no ALPN", "h2", "{{h1}}", "ca_file: {{ca}}, server_name: 127.0.0.1", "upstream_tls_handshake", "did not agree to HTTP/2"},
		{"auto untrusted CA", "auto", "{{b}}", "ca_file: {{other}}, server_name: 127.0.0.1", "upstream_tls_certificate", "unknown authority"},
		{"auto wrong name", "auto", "{{b}}", "ca_file: {{ca}}, server_name: wrong.test", "upstream_tls_certificate", "wrong.test"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := tlsUpstreamGateway(t, tc.target, tc.tls, "protocol: "+tc.protocol, "",
				map[string]string{"b": b.addr, "h1": noALPN.Addr(), "ca": ca.CAFile(t), "other": other.CAFile(t), "plain": hostport(plain)})
			resp, _ := do(t, newClient(), "GET", tg.url("/x"), "")
			mustStatus(t, resp, 502)
			if got := resp.Header.Get("X-Sluice-Error"); got != tc.code {
				t.Errorf("X-Sluice-Error %q, want %q", got, tc.code)
			}
			for _, l := range tg.accessLines(1) {
				if l["reason"] != tc.code || !strings.Contains(fmt.Sprint(l["error"]), tc.errText) {
					t.Errorf("access log: reason %v, error %v; want %s with %q", l["reason"], l["error"], tc.code, tc.errText)
				}
			}
			// Every dial failed in its handshake: each counted once, in both.
			f := gathered(t, tg)
			tlsErrs, _ := f.value("sluice_upstream_tls_handshake_errors_total", map[string]string{"reason": tc.code})
			dialErrs, _ := f.value("sluice_upstream_dial_errors_total", map[string]string{"upstream": "s"})
			if tlsErrs < 1 || dialErrs != tlsErrs {
				t.Errorf("sluice_upstream_tls_handshake_errors_total{reason=%q} = %v, sluice_upstream_dial_errors_total = %v; want the same, >= 1", tc.code, tlsErrs, dialErrs)
			}
		})
	}
}

// TestUpstreamTLSH2Resumption: the HTTP/2 pool's handshakes (protocol h2 and auto, each
// request on a new connection: keepalive.max_requests 1) are counted full and resumed per
// target, as the HTTP/1.1 pool's are.
func TestUpstreamTLSH2Resumption(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, protocol := range []string{"h2", "auto"} {
		t.Run(protocol, func(t *testing.T) {
			b := newALPNBackend(t, ca, false, true)
			tg := tlsUpstreamGateway(t, "{{b}}", "ca_file: {{ca}}, server_name: 127.0.0.1",
				"protocol: "+protocol+", keepalive: {max_requests: 1}", "", map[string]string{"b": b.addr, "ca": ca.CAFile(t)})
			c := newClient()
			for i := range 4 {
				req, _ := http.NewRequest("GET", tg.url("/r"), nil)
				req.Header.Set("X-Test-Id", fmt.Sprint(i))
				resp, err := c.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				resp.Body.Close()
				mustStatus(t, resp, 200)
			}
			// A replacement dialed ahead may still be in its handshake: wait until every
			// connection the backend accepted is counted, one way or the other.
			var full, resumed, conns float64
			testutil.WaitFor(t, 10*time.Second, "every handshake counted", func() bool {
				f := gathered(t, tg)
				full, _ = f.value("sluice_upstream_tls_handshakes_total", map[string]string{"upstream": "s", "resumed": "false"})
				resumed, _ = f.value("sluice_upstream_tls_handshakes_total", map[string]string{"upstream": "s", "resumed": "true"})
				conns = float64(b.conns.Load())
				return full+resumed >= conns
			})
			t.Logf("%v connections: %v full handshakes, %v resumed", conns, full, resumed)
			if full != 1 || resumed != conns-1 {
				t.Errorf("handshakes full %v resumed %v for %v connections; want 1 full, the rest resumed", full, resumed, conns)
			}
		})
	}
}

// TestUpstreamTLSH2ClientCertRefused: a TLS 1.3 backend that refuses the missing client
// certificate does so after the gateway's side of the handshake has completed, with an
// alert that ends the HTTP/2 connection under the streams already sent: upstream_tls_handshake,
// as on HTTP/1.1, not upstream_reset_before_response. Best effort, as there: a stream whose
// HEADERS write met the closed connection first is upstream_reset_before_request (1 in 8
// here), so at least one of 4 requests must carry the TLS code.
func TestUpstreamTLSH2ClientCertRefused(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, protocol := range []string{"h2", "auto"} {
		t.Run(protocol, func(t *testing.T) {
			b := newALPNBackend(t, ca, false, true)
			b.stop()
			b.tls.ClientAuth, b.tls.ClientCAs, b.tls.MinVersion = tls.RequireAndVerifyClientCert, ca.Pool(), tls.VersionTLS13
			b.start(false, true)
			tg := tlsUpstreamGateway(t, "{{b}}", "ca_file: {{ca}}, server_name: 127.0.0.1", "protocol: "+protocol, "", map[string]string{"b": b.addr, "ca": ca.CAFile(t)})
			c := newClient()
			labeled := 0
			for i, method := range []string{"GET", "POST", "GET", "POST"} {
				resp, _ := do(t, c, method, tg.url("/x"), "body-")
				mustStatus(t, resp, 502)
				switch code := resp.Header.Get("X-Sluice-Error"); code {
				case "upstream_tls_handshake":
					labeled++
				case "upstream_reset_before_request":
				default:
					t.Errorf("request %d (%s): X-Sluice-Error %q, want upstream_tls_handshake", i, method, code)
				}
			}
			if labeled == 0 {
				t.Error("no request was answered upstream_tls_handshake")
			}
			if runs, _ := b.seen(""); runs != 0 {
				t.Errorf("the backend ran %d requests", runs)
			}
		})
	}
}
