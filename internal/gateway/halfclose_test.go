package gateway

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// TestHalfClosedClientIsAnswered: a client may half-close its connection after the request
// (RFC 9112 §9.6); that is not an abort. It gets the backend's response, and the access log
// says what was sent.
func TestHalfClosedClientIsAnswered(t *testing.T) {
	be := serveConns(t, func(c net.Conn) {
		if _, err := readHeadBytes(bufio.NewReader(c)); err != nil {
			return
		}
		time.Sleep(600 * time.Millisecond) // longer than the gateway's client-check step
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
	})
	tg := edgeGateway(t, be, "", "")
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /h HTTP/1.1\r\nHost: h\r\nX-Request-Id: hc-1\r\n\r\n")
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(c)
	wantBytes(t, "client got", string(out), "HTTP/1.1 200 OK\r\nX-Request-Id: hc-1\r\nContent-Length: 5\r\n\r\nhello")
	wantFields(t, tg.accessLines(1)[0], map[string]any{"status": 200, "bytes_out": 5, "reason": nil})
}
