package gateway

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestClientCertRecheckedOnOpenConnections: a change of a listener's client certificate
// policy (client_ca_file replaced on disk, client_auth changed by a reload) applies to the
// connections already open at their next request, over HTTP/1.1 and HTTP/2: a certificate
// whose CA was taken out, or a connection without one under a new require, gets 421
// client_cert_no_longer_trusted (never forwarded, logged, counted) and its connection
// closes, while a new connection meets the policy in its handshake; a bundle that only
// gained a CA, or client_auth none, keeps the connection served (under none without the
// subject, which routes no longer see).
func TestClientCertRecheckedOnOpenConnections(t *testing.T) {
	serverCA, ca1, ca2 := testutil.NewCA(t), testutil.NewCA(t), testutil.NewCA(t)
	cert, key := serverCA.Issue(t, "s", testutil.CertOptions{DNSNames: []string{"a.test"}})
	one, err := tlsCert(ca1.IssuePEM(t, testutil.CertOptions{CommonName: "svc-one", Client: true}))
	if err != nil {
		t.Fatal(err)
	}
	const y = `
listeners:
  - {address: 127.0.0.1:0, protocols: [http1, h2], tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}], client_auth: {{mode}}, client_ca_file: {{ca}}}}
upstreams:
  - {id: one, targets: [{address: {{one}}}]}
  - {id: rest, targets: [{address: {{rest}}}]}
routes:
  - {id: one, match: {tls: [{name: client_cert_subject, exact: CN=svc-one}]}, upstream: one}
  - {id: rest, upstream: rest}
`
	for _, tc := range []struct {
		name  string
		mode  string            // client_auth before the change
		certs []tls.Certificate // the client's
		// change is made with the connection open, and returns once it is in force.
		change  func(t *testing.T, tg *testGateway, logs *syncBuffer, caFile string, vars map[string]string)
		refused bool   // the next request on the connection is refused
		backend string // else: the backend that serves it
	}{
		{name: "CA taken out", mode: "optional", certs: []tls.Certificate{one}, refused: true,
			change: func(t *testing.T, tg *testGateway, logs *syncBuffer, caFile string, _ map[string]string) {
				replaceCAFile(t, logs, caFile, ca2.CertPEM)
				cfg := serverCA.ClientConfig("a.test")
				cfg.Certificates = []tls.Certificate{one}
				if _, err := getOnce(tg.addr, cfg, "/new"); err == nil {
					t.Error("a new connection with the removed CA's certificate: served, want its handshake refused")
				}
			}},
		{name: "CA added", mode: "require", certs: []tls.Certificate{one}, backend: "one",
			change: func(t *testing.T, _ *testGateway, logs *syncBuffer, caFile string, _ map[string]string) {
				replaceCAFile(t, logs, caFile, append(append([]byte{}, ca1.CertPEM...), ca2.CertPEM...))
			}},
		{name: "optional to require without a certificate", mode: "optional", refused: true,
			change: func(t *testing.T, tg *testGateway, _ *syncBuffer, _ string, vars map[string]string) {
				vars["mode"] = "require"
				if err := tg.gw.Apply(mustParse(t, y, vars)); err != nil {
					t.Fatal(err)
				}
				if _, err := getOnce(tg.addr, serverCA.ClientConfig("a.test"), "/new"); err == nil {
					t.Error("a new connection without a certificate: served, want its handshake refused")
				}
			}},
		{name: "optional to none", mode: "optional", certs: []tls.Certificate{one}, backend: "rest",
			change: func(t *testing.T, tg *testGateway, _ *syncBuffer, _ string, vars map[string]string) {
				vars["mode"] = "none"
				if err := tg.gw.Apply(mustParse(t, y, vars)); err != nil {
					t.Fatal(err)
				}
			}},
	} {
		for _, proto := range []string{"http/1.1", "h2"} {
			t.Run(tc.name+"/"+proto, func(t *testing.T) {
				caFile := filepath.Join(t.TempDir(), "clients.crt")
				testutil.WriteFile(t, caFile, ca1.CertPEM)
				oneBE, oneHits := countingEcho(t, "one")
				restBE, restHits := countingEcho(t, "rest")
				vars := map[string]string{"c": cert, "k": key, "ca": caFile, "mode": tc.mode, "one": oneBE, "rest": restBE}
				tg, logs := startGatewayLogged(t, y, vars)
				cc := keptConn(t, tg.addr, serverCA, proto, tc.certs)
				wantBefore := "rest"
				if tc.certs != nil {
					wantBefore = "one"
				}
				if resp, info := keptGet(t, cc, "/before"); resp.StatusCode != 200 || info.Backend != wantBefore {
					t.Fatalf("before the change: %d from %q, want 200 from %q", resp.StatusCode, info.Backend, wantBefore)
				}
				tc.change(t, tg, logs, caFile, vars)
				resp, info := keptGet(t, cc, "/after")
				if !tc.refused {
					if resp.StatusCode != 200 || info.Backend != tc.backend {
						t.Fatalf("after the change: %d from %q, want 200 from %q on the same connection", resp.StatusCode, info.Backend, tc.backend)
					}
					if again, _ := keptGet(t, cc, "/again"); again.StatusCode != 200 {
						t.Fatalf("a second request after the change: %d, want 200", again.StatusCode)
					}
					f := gathered(t, tg)
					full, _ := f.value("sluice_tls_handshakes_total", map[string]string{"resumed": "false"})
					resumed, _ := f.value("sluice_tls_handshakes_total", map[string]string{"resumed": "true"})
					if full+resumed != 1 {
						t.Errorf("%v handshakes, want 1: the client kept its connection", full+resumed)
					}
					for _, l := range tg.accessLines(3) {
						if l["path"] == "/after" && tc.backend == "rest" && l["client_cert_subject"] != nil {
							t.Errorf("client_cert_subject %v logged under client_auth none, want none", l["client_cert_subject"])
						}
					}
					return
				}
				if resp.StatusCode != 421 || resp.Header.Get("X-Sluice-Error") != "client_cert_no_longer_trusted" {
					t.Fatalf("after the change: %d %q, want 421 client_cert_no_longer_trusted", resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
				}
				if proto == "http/1.1" && !resp.Close {
					t.Error("the 421 has no Connection: close")
				}
				testutil.WaitFor(t, 5*time.Second, "the gateway to close the connection", func() bool { return cc.Err() != nil })
				if n := oneHits("/after") + restHits("/after"); n != 0 {
					t.Errorf("the backends got the refused request %d times, want 0", n)
				}
				testutil.WaitFor(t, 5*time.Second, "sluice_gateway_errors_total{reason=client_cert_no_longer_trusted} at 1", func() bool {
					n, _ := gathered(t, tg).value("sluice_gateway_errors_total", map[string]string{"reason": "client_cert_no_longer_trusted"})
					return n == 1
				})
				var wantSubject any // the handshake's, naming who was refused
				if tc.certs != nil {
					wantSubject = "CN=svc-one"
				}
				found := false
				for _, l := range tg.accessLines(2) {
					found = found || l["path"] == "/after" && l["reason"] == "client_cert_no_longer_trusted" && l["status"] == float64(421) &&
						l["client_cert_subject"] == wantSubject
				}
				if !found {
					t.Errorf("no access log line for the refused request with its reason and client_cert_subject %v", wantSubject)
				}
				if !strings.Contains(logs.String(), "client certificate no longer trusted") {
					t.Error("the refusal is not in the log")
				}
			})
		}
	}
}

// replaceCAFile writes the client CA bundle caFile anew and waits until the watcher has put
// it in force (its log line comes after the listener's policy changed).
func replaceCAFile(t *testing.T, logs *syncBuffer, caFile string, pem []byte) {
	t.Helper()
	before := strings.Count(logs.String(), "client CA bundle reloaded")
	testutil.WriteFile(t, caFile, pem)
	testutil.WaitFor(t, 15*time.Second, "the new client CA bundle in force", func() bool {
		return strings.Count(logs.String(), "client CA bundle reloaded") > before
	})
}

// keptConn opens one TLS connection to addr speaking proto (ALPN) with the client
// certificates certs, for requests that must all go over it.
func keptConn(t *testing.T, addr string, ca *testutil.CA, proto string, certs []tls.Certificate) *http.ClientConn {
	t.Helper()
	cfg := ca.ClientConfig("a.test")
	cfg.Certificates, cfg.NextProtos = certs, []string{proto}
	tc, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tc.Close() })
	cc := clientConnOver(t, tc, proto, "a.test:443")
	t.Cleanup(func() { cc.Close() })
	return cc
}

// clientConnOver is an HTTP client connection over tc, a TLS connection that chose proto
// (ALPN), to authority.
func clientConnOver(t *testing.T, tc *tls.Conn, proto, authority string) *http.ClientConn {
	t.Helper()
	tr := &http.Transport{Protocols: new(http.Protocols),
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return tc, nil }}
	tr.Protocols.SetHTTP1(proto == "http/1.1")
	tr.Protocols.SetHTTP2(proto == "h2")
	cc, err := tr.NewClientConn(t.Context(), "https", authority)
	if err != nil {
		t.Fatal(err)
	}
	return cc
}

// keptGet gets path over cc, with the response's body read (an echoInfo when it is 200).
func keptGet(t *testing.T, cc *http.ClientConn, path string) (*http.Response, echoInfo) {
	t.Helper()
	req, _ := http.NewRequest("GET", "https://a.test"+path, nil)
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	resp, err := cc.RoundTrip(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("GET %s on the kept connection: %v", path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var info echoInfo
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(body, &info); err != nil {
			t.Fatalf("bad echo body %q: %v", body, err)
		}
	}
	return resp, info
}

// countingEcho is an echo backend that counts the requests for each path.
func countingEcho(t *testing.T, name string) (addr string, hits func(path string) int) {
	t.Helper()
	var mu sync.Mutex
	n := map[string]int{}
	echo := echoBackend(t, name)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		n[r.URL.Path]++
		mu.Unlock()
		echo.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return hostport(srv), func(path string) int {
		mu.Lock()
		defer mu.Unlock()
		return n[path]
	}
}

// TestClientCertRecheckDrainsHTTP2: an HTTP/2 connection whose client fails the changed
// policy is drained, not cut: the stream that found it out is answered 421, and a stream in
// flight from before the change gets its whole response before the connection closes.
func TestClientCertRecheckDrainsHTTP2(t *testing.T) {
	serverCA, clientCA := testutil.NewCA(t), testutil.NewCA(t)
	cert, key := serverCA.Issue(t, "s", testutil.CertOptions{DNSNames: []string{"a.test"}})
	arrived, release := make(chan struct{}), make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			close(arrived)
			<-release
		}
		io.WriteString(w, "done "+r.URL.Path)
	}))
	t.Cleanup(slow.Close)
	var releaseOnce sync.Once
	unblock := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before slow.Close, which waits for the handler
	const y = `
listeners:
  - {address: 127.0.0.1:0, protocols: [http1, h2], tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}], client_auth: {{mode}}, client_ca_file: {{ca}}}}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`
	vars := map[string]string{"c": cert, "k": key, "ca": clientCA.CAFile(t), "mode": "optional", "b": hostport(slow)}
	tg := startGateway(t, y, vars)
	cc := keptConn(t, tg.addr, serverCA, "h2", nil)
	type result struct {
		status int
		body   string
		err    error
	}
	inFlight := make(chan result, 1)
	go func() {
		req, _ := http.NewRequest("GET", "https://a.test/slow", nil)
		resp, err := cc.RoundTrip(req)
		if err != nil {
			inFlight <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		inFlight <- result{resp.StatusCode, string(b), err}
	}()
	select {
	case <-arrived:
	case <-time.After(5 * time.Second):
		t.Fatal("the first request never reached the backend")
	}
	vars["mode"] = "require"
	if err := tg.gw.Apply(mustParse(t, y, vars)); err != nil {
		t.Fatal(err)
	}
	if resp, _ := keptGet(t, cc, "/after"); resp.StatusCode != 421 {
		t.Fatalf("a new stream after the change: %d, want 421", resp.StatusCode)
	}
	unblock()
	select {
	case r := <-inFlight:
		if r.err != nil || r.status != 200 || r.body != "done /slow" {
			t.Fatalf("the stream in flight: %d %q, %v; want 200 %q", r.status, r.body, r.err, "done /slow")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the stream in flight never ended")
	}
	testutil.WaitFor(t, 5*time.Second, "the gateway to close the drained connection", func() bool { return cc.Err() != nil })
}

// TestPlainConnectionsUnderNewClientAuth: a reload that turns a plain listener into one
// with TLS and client_auth: require (same address, so the same server) applies to the
// plain connections already open, as to a TLS connection without a certificate: the next
// request (HTTP/1.1) or stream (h2c) is answered 421 client_cert_no_longer_trusted and
// never forwarded, and the connection ends. Served on, a plain keep-alive client kept the
// access the new policy denies for as long as it kept its connection. Under optional it
// goes on, as a TLS connection without a certificate does.
func TestPlainConnectionsUnderNewClientAuth(t *testing.T) {
	serverCA, clientCA := testutil.NewCA(t), testutil.NewCA(t)
	cert, key := serverCA.Issue(t, "s", testutil.CertOptions{DNSNames: []string{"a.test"}})
	const plain = `
listeners:
  - {address: 127.0.0.1:0, protocols: [http1, h2c]}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`
	const mtls = `
listeners:
  - {address: 127.0.0.1:0, protocols: [http1, h2], tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}], client_auth: {{mode}}, client_ca_file: {{ca}}}}
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`
	for _, mode := range []string{"require", "optional"} {
		for _, proto := range []string{"http/1.1", "h2c"} {
			t.Run(mode+"/"+proto, func(t *testing.T) {
				be, hits := countingEcho(t, "b")
				vars := map[string]string{"c": cert, "k": key, "ca": clientCA.CAFile(t), "mode": mode, "b": be}
				tg := startGateway(t, plain, vars)
				nc, err := net.Dial("tcp", tg.addr)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { nc.Close() })
				tr := &http.Transport{Protocols: new(http.Protocols),
					DialContext: func(context.Context, string, string) (net.Conn, error) { return nc, nil }}
				tr.Protocols.SetHTTP1(proto == "http/1.1")
				tr.Protocols.SetUnencryptedHTTP2(proto == "h2c")
				cc, err := tr.NewClientConn(t.Context(), "http", "a.test:80")
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { cc.Close() })
				if resp, _ := keptGet(t, cc, "/before"); resp.StatusCode != 200 {
					t.Fatalf("before the change: %d, want 200", resp.StatusCode)
				}
				if err := tg.gw.Apply(mustParse(t, mtls, vars)); err != nil {
					t.Fatal(err)
				}
				resp, _ := keptGet(t, cc, "/after")
				if mode == "optional" {
					if resp.StatusCode != 200 {
						t.Fatalf("after the change to optional: %d %q, want 200", resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
					}
					return
				}
				if resp.StatusCode != 421 || resp.Header.Get("X-Sluice-Error") != "client_cert_no_longer_trusted" {
					t.Fatalf("after the change: %d %q, want 421 client_cert_no_longer_trusted", resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
				}
				if n := hits("/after"); n != 0 {
					t.Errorf("the backend got the refused request %d times, want 0", n)
				}
				testutil.WaitFor(t, 5*time.Second, "the gateway to close the connection", func() bool { return cc.Err() != nil })
			})
		}
	}
}
