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
