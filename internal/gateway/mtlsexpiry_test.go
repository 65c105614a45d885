package gateway

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestClientCertExpiryOnOpenConnections: a client certificate that expires while its
// connection stays open (short-lived certificates: SPIFFE SVIDs, cert-manager's) stops
// being trusted at the first request that starts after its NotAfter, over HTTP/1.1
// keep-alive and HTTP/2: 421 client_cert_no_longer_trusted, never forwarded, logged and
// counted, and the connection ends (HTTP/1.1 closed; HTTP/2 drained, its stream in flight
// finishing). Served on, the connection kept its access, and its subject for routes, long
// after the certificate expired. A connection without a certificate under optional, open
// as long, is served on.
func TestClientCertExpiryOnOpenConnections(t *testing.T) {
	serverCA, clientCA := testutil.NewCA(t), testutil.NewCA(t)
	cert, key := serverCA.Issue(t, "s", testutil.CertOptions{DNSNames: []string{"a.test"}})
	const y = `
listeners:
  - {address: 127.0.0.1:0, protocols: [http1, h2], tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}], client_auth: optional, client_ca_file: {{ca}}}}
upstreams:
  - {id: one, targets: [{address: {{one}}}]}
  - {id: rest, targets: [{address: {{rest}}}]}
routes:
  - {id: one, match: {tls: [{name: client_cert_subject, exact: CN=svc-short}]}, upstream: one}
  - {id: rest, upstream: rest}
`
	for _, proto := range []string{"http/1.1", "h2"} {
		t.Run(proto, func(t *testing.T) {
			// Backend one holds /slow until released: the HTTP/2 stream in flight.
			arrived, release := make(chan struct{}), make(chan struct{})
			var releaseOnce sync.Once
			unblock := func() { releaseOnce.Do(func() { close(release) }) }
			oneBE, oneHits := countingEcho(t, "one")
			slow := startHolding(t, oneBE, arrived, release)
			t.Cleanup(unblock) // before the backend's Close, which waits for the handler
			restBE, restHits := countingEcho(t, "rest")
			vars := map[string]string{"c": cert, "k": key, "ca": clientCA.CAFile(t), "one": slow, "rest": restBE}
			tg, logs := startGatewayLogged(t, y, vars)

			// x509 keeps NotAfter to the second: it is 5-6 s ahead, room for two handshakes,
			// two requests and the stream in flight on a loaded CI machine.
			notAfter := time.Now().Add(6 * time.Second)
			short, err := tlsCert(clientCA.IssuePEM(t, testutil.CertOptions{CommonName: "svc-short", Client: true, NotAfter: notAfter}))
			if err != nil {
				t.Fatal(err)
			}
			notAfter = short.Leaf.NotAfter
			cc := keptConn(t, tg.addr, serverCA, proto, []tls.Certificate{short})
			plain := keptConn(t, tg.addr, serverCA, proto, nil)
			if resp, info := keptGet(t, cc, "/before"); resp.StatusCode != 200 || info.Backend != "one" {
				t.Fatalf("before the expiry: %d from %q, want 200 from one", resp.StatusCode, info.Backend)
			}
			if resp, info := keptGet(t, plain, "/before"); resp.StatusCode != 200 || info.Backend != "rest" {
				t.Fatalf("without a certificate: %d from %q, want 200 from rest", resp.StatusCode, info.Backend)
			}
			inFlight := make(chan string, 1)
			if proto == "h2" {
				go func() {
					req, _ := http.NewRequest("GET", "https://a.test/slow", nil)
					resp, err := cc.RoundTrip(req)
					if err != nil {
						inFlight <- err.Error()
						return
					}
					defer resp.Body.Close()
					b, err := io.ReadAll(resp.Body)
					if err != nil {
						inFlight <- err.Error()
						return
					}
					inFlight <- resp.Status + " " + string(b)
				}()
				select {
				case <-arrived:
				case <-time.After(5 * time.Second):
					t.Fatal("the stream in flight never reached the backend")
				}
			}
			if time.Now().After(notAfter) {
				t.Fatalf("the requests before the expiry took until after it (%v): the machine is too slow for this test", notAfter)
			}
			testutil.WaitFor(t, 10*time.Second, "the client certificate to expire", func() bool { return time.Now().After(notAfter) })

			resp, _ := keptGet(t, cc, "/after")
			if resp.StatusCode != 421 || resp.Header.Get("X-Sluice-Error") != "client_cert_no_longer_trusted" {
				t.Fatalf("after the expiry: %d %q, want 421 client_cert_no_longer_trusted", resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
			}
			if proto == "http/1.1" && !resp.Close {
				t.Error("the 421 has no Connection: close")
			}
			if resp, info := keptGet(t, plain, "/plain-after"); resp.StatusCode != 200 || info.Backend != "rest" {
				t.Errorf("without a certificate, after the other's expiry: %d from %q, want 200 from rest", resp.StatusCode, info.Backend)
			}
			if proto == "h2" {
				unblock()
				select {
				case got := <-inFlight:
					if got != "200 OK done /slow" {
						t.Errorf("the stream in flight: %q, want %q", got, "200 OK done /slow")
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the stream in flight never ended")
				}
			}
			testutil.WaitFor(t, 10*time.Second, "the gateway to close the connection", func() bool { return cc.Err() != nil })
			if plain.Err() != nil {
				t.Errorf("the connection without a certificate ended: %v", plain.Err())
			}
			if n := oneHits("/after") + restHits("/after"); n != 0 {
				t.Errorf("the backends got the refused request %d times, want 0", n)
			}
			testutil.WaitFor(t, 5*time.Second, "sluice_gateway_errors_total{reason=client_cert_no_longer_trusted} at 1", func() bool {
				n, _ := gathered(t, tg).value("sluice_gateway_errors_total", map[string]string{"reason": "client_cert_no_longer_trusted"})
				return n == 1
			})
			if n := strings.Count(logs.String(), "client certificate expired while its connection was open"); n != 1 {
				t.Errorf("the expiry logged %d times, want once", n)
			}
		})
	}
}

// startHolding is a backend in front of the backend at addr that holds /slow until release
// (closing arrived when it came) and answers it "done /slow"; it passes the rest on.
func startHolding(t *testing.T, addr string, arrived, release chan struct{}) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
			io.WriteString(w, "done /slow")
			return
		}
		resp, err := http.Get("http://" + addr + r.URL.Path)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		io.Copy(w, resp.Body)
	}))
	t.Cleanup(srv.Close)
	return hostport(srv)
}
