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

// TestMutualTLSKeptAlive: the client subject is rendered once per connection
// (server.Served.ClientSubject), so each request of a kept-alive connection must still see
// its own connection's subject: two clients with different certificates and one without,
// each on one connection over HTTP/1.1 and HTTP/2, take turns; every request is routed by
// its own subject and logs it.
func TestMutualTLSKeptAlive(t *testing.T) {
	ca, clientCA := testutil.NewCA(t), testutil.NewCA(t)
	cert, key := ca.Issue(t, "s", testutil.CertOptions{DNSNames: []string{"a.test"}})
	var certs []tls.Certificate
	for _, cn := range []string{"svc-billing", "svc-orders"} {
		c, err := tlsCert(clientCA.IssuePEM(t, testutil.CertOptions{CommonName: cn, Client: true}))
		if err != nil {
			t.Fatal(err)
		}
		certs = append(certs, c)
	}
	clients := []struct {
		name, subject, backend string
		certs                  []tls.Certificate
	}{
		{"billing", "CN=svc-billing", "billing", certs[:1]},
		{"orders", "CN=svc-orders", "rest", certs[1:]},
		{"anonymous", "", "rest", nil},
	}
	for _, proto := range []string{"HTTP/1.1", "HTTP/2.0"} {
		t.Run(proto, func(t *testing.T) {
			tg := startGateway(t, `
listeners:
  - {address: 127.0.0.1:0, protocols: [http1, h2], tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}], client_auth: optional, client_ca_file: {{ca}}}}
upstreams:
  - {id: billing, targets: [{address: {{billing}}}]}
  - {id: rest, targets: [{address: {{rest}}}]}
routes:
  - {id: billing, match: {tls: [{name: client_cert_subject, exact: CN=svc-billing}]}, upstream: billing}
  - {id: rest, upstream: rest}
`, map[string]string{"c": cert, "k": key, "ca": clientCA.CAFile(t),
				"billing": hostport(echoBackend(t, "billing")), "rest": hostport(echoBackend(t, "rest"))})
			hc := make([]*http.Client, len(clients))
			for i, cl := range clients {
				cfg := ca.ClientConfig("a.test")
				cfg.Certificates = cl.certs
				tr := &http.Transport{TLSClientConfig: cfg, ForceAttemptHTTP2: proto == "HTTP/2.0"}
				t.Cleanup(tr.CloseIdleConnections)
				hc[i] = &http.Client{Transport: tr, Timeout: 5 * time.Second}
			}
			const rounds = 3
			for r := range rounds {
				for i, cl := range clients {
					resp, info := getEcho(t, hc[i], mustRequest(t, fmt.Sprintf("https://%s/%s/%d", tg.addr, cl.name, r)))
					if resp.Proto != proto || info.Backend != cl.backend {
						t.Fatalf("%s request %d: %s served by %q, want %s by %q", cl.name, r, resp.Proto, info.Backend, proto, cl.backend)
					}
				}
			}
			f := gathered(t, tg)
			full, _ := f.value("sluice_tls_handshakes_total", map[string]string{"resumed": "false"})
			resumed, _ := f.value("sluice_tls_handshakes_total", map[string]string{"resumed": "true"})
			if full+resumed != float64(len(clients)) {
				t.Fatalf("%v handshakes, want %d: one connection per client", full+resumed, len(clients))
			}
			lines, checked := tg.accessLines(rounds*len(clients)), 0
			for _, l := range lines {
				path, _ := l["path"].(string)
				name, _, _ := strings.Cut(strings.TrimPrefix(path, "/"), "/")
				for _, cl := range clients {
					if cl.name != name {
						continue
					}
					checked++
					if got, _ := l["client_cert_subject"].(string); got != cl.subject {
						t.Errorf("%s: client_cert_subject %q, want %q", path, got, cl.subject)
					}
				}
			}
			if checked != rounds*len(clients) {
				t.Errorf("%d access log lines of the clients' requests, want %d", checked, rounds*len(clients))
			}
		})
	}
}
