package gateway

import (
	"bufio"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// corruptingConn flips the last byte of every write once corrupt is set: the record written
// then fails its integrity check at the reader.
type corruptingConn struct {
	net.Conn
	corrupt atomic.Bool
}

func (c *corruptingConn) Write(b []byte) (int, error) {
	if c.corrupt.Load() && len(b) > 0 {
		b = append([]byte(nil), b...)
		b[len(b)-1] ^= 0xff
	}
	return c.Conn.Write(b)
}

// TestUpstreamTLSLocalAlert: a TLS session that Sluice's side ends with an alert before any
// response byte (here a response record that fails its integrity check: "bad record MAC";
// a TLS 1.2 backend's renegotiation request, "no renegotiation", is the same kind) is
// upstream_tls_handshake, not upstream_reset_before_response, and the POST the backend read
// is not retried.
func TestUpstreamTLSLocalAlert(t *testing.T) {
	ca := testutil.NewCA(t)
	cfg := ca.ServerConfig(t, "127.0.0.1")
	var requests atomic.Int64
	addr := serveConns(t, func(raw net.Conn) {
		cc := &corruptingConn{Conn: raw}
		tc := tls.Server(cc, cfg)
		req, err := http.ReadRequest(bufio.NewReader(tc))
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		requests.Add(1)
		cc.corrupt.Store(true)
		io.WriteString(tc, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")
		io.Copy(io.Discard, tc) // until the gateway closes
	})
	tg := tlsUpstreamGateway(t, "https://{{b}}", "ca_file: {{ca}}", "", "", map[string]string{"b": addr, "ca": ca.CAFile(t)})
	resp, _ := do(t, newClient(), "POST", tg.url("/x"), "once")
	mustStatus(t, resp, 502)
	if got := resp.Header.Get("X-Sluice-Error"); got != "upstream_tls_handshake" {
		t.Errorf("X-Sluice-Error %q, want upstream_tls_handshake", got)
	}
	l := tg.accessLines(1)[0]
	if e, _ := l["error"].(string); !strings.Contains(e, "local error: tls: bad record MAC") || l["attempts"] != 1.0 {
		t.Errorf("access log: error %q, attempts %v; want the TLS error, one attempt", e, l["attempts"])
	}
	if n := requests.Load(); n != 1 {
		t.Errorf("backend read %d requests, want 1 (a POST it read is not retried)", n)
	}
}

// corruptingReader flips the last byte of every read once corrupt is set: the record read
// then fails its integrity check here, and crypto/tls answers with a bad_record_mac alert.
type corruptingReader struct {
	net.Conn
	corrupt atomic.Bool
}

func (c *corruptingReader) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.corrupt.Load() {
		b[n-1] ^= 0xff
	}
	return n, err
}

// TestUpstreamTLSH2AlertAfterSettings: a TLS alert from the backend on an HTTP/2 connection
// it had accepted (its SETTINGS came) says nothing of whether a stream in flight was run:
// here the backend ran the POST, then failed a record of its body and sent bad_record_mac.
// That is upstream_reset_before_response (gRPC's UNKNOWN), not upstream_tls_handshake, whose
// gRPC UNAVAILABLE tells clients the call was not delivered and may be sent again. Only an
// alert before the backend's SETTINGS (a TLS 1.3 backend refusing the client certificate,
// TestUpstreamTLSH2ClientCertRefused) is the TLS session refused.
func TestUpstreamTLSH2AlertAfterSettings(t *testing.T) {
	ca := testutil.NewCA(t)
	cfg := ca.ServerConfig(t, "127.0.0.1")
	cfg.NextProtos = []string{"h2"}
	var ran atomic.Int64
	var cr atomic.Pointer[corruptingReader] // the connection's (one in this test)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.ReadFull(r.Body, make([]byte, 5)) // "first": the request runs
		ran.Add(1)
		cr.Load().corrupt.Store(true) // the record of "second" fails here
		io.Copy(io.Discard, r.Body)
	})}
	go srv.Serve(corruptingListener{Listener: ln, cfg: cfg, last: &cr})
	t.Cleanup(func() { srv.Close() })
	addr := ln.Addr().String()
	tg := tlsUpstreamGateway(t, "{{b}}", "ca_file: {{ca}}, server_name: 127.0.0.1", "protocol: h2", "", map[string]string{"b": addr, "ca": ca.CAFile(t)})
	pr, pw := io.Pipe()
	req, _ := http.NewRequest("POST", tg.url("/x"), pr)
	got := make(chan *http.Response, 1)
	go func() {
		resp, err := newClient().Do(req)
		if err != nil {
			t.Error(err)
		}
		got <- resp
	}()
	io.WriteString(pw, "first")
	testutil.WaitFor(t, 5*time.Second, "the backend to run the request", func() bool { return ran.Load() == 1 })
	io.WriteString(pw, "second")
	pw.Close()
	resp := <-got
	if resp == nil {
		return
	}
	resp.Body.Close()
	mustStatus(t, resp, 502)
	if code := resp.Header.Get("X-Sluice-Error"); code != "upstream_reset_before_response" {
		t.Errorf("X-Sluice-Error %q, want upstream_reset_before_response", code)
	}
	if e, _ := tg.accessLines(1)[0]["error"].(string); !strings.Contains(e, "remote error: tls: bad record MAC") {
		t.Errorf("access log error %q, want the backend's alert", e)
	}
	if n := ran.Load(); n != 1 {
		t.Errorf("the backend ran the POST %d times, want once", n)
	}
}

// corruptingListener serves TLS over a corruptingReader per connection, the latest kept in
// last for the test's handler to switch on.
type corruptingListener struct {
	net.Listener
	cfg  *tls.Config
	last *atomic.Pointer[corruptingReader]
}

func (l corruptingListener) Accept() (net.Conn, error) {
	raw, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	cr := &corruptingReader{Conn: raw}
	l.last.Store(cr)
	return tls.Server(cr, l.cfg), nil
}
