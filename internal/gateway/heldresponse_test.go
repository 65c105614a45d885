package gateway

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestPipelinedDuringExchangeIsAnswered: a kept-alive response's last bytes go out inside the
// wait for the next request (server.Exchange.holdable, netio.Conn.HoldNextWrite), whose
// poller call resets the socket's readiness first. A pipelining client's next request that
// arrived while the previous one was still upstream loses its readiness event there; the
// idle wait's second stage must still find it, so it is answered within moments, not after
// the idle timeout.
func TestPipelinedDuringExchangeIsAnswered(t *testing.T) {
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			arrived <- struct{}{}
			<-release
		}
		io.WriteString(w, r.URL.Path)
	}))
	defer be.Close()
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	for round := range 3 {
		io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n")
		<-arrived
		io.WriteString(conn, "GET /fast HTTP/1.1\r\nHost: h\r\n\r\n") // pipelined, while /slow is upstream
		time.Sleep(20 * time.Millisecond)                             // let it reach the gateway's socket
		start := time.Now()
		release <- struct{}{}
		for _, want := range []string{"/slow", "/fast"} {
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("round %d, %s: %v", round, want, err)
			}
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || string(body) != want {
				t.Fatalf("round %d: got %d %q, want 200 %q", round, resp.StatusCode, body, want)
			}
		}
		// The second stage starts after idleFastWait (10 ms, up to 10 ms late); the idle
		// timeout is a minute. Seconds separate the two on any machine.
		if d := time.Since(start); d > 5*time.Second {
			t.Fatalf("round %d: the pipelined request waited %v", round, d)
		}
	}
}

// TestTLSHeldResponsesKeepTheirBytes: under TLS the last records of a kept-alive response
// are held, copied, for the wait for the next request (netio.Conn.HoldWrites): crypto/tls
// writes each record from a pooled buffer, and a response past one record (dynamic record
// sizing starts near 1.2 KB) is several writes. Bodies from empty to past the copy bound
// (netio.MaxHeldCopy) arrive whole, in order, over one connection.
func TestTLSHeldResponsesKeepTheirBytes(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		w.Header().Set("Content-Length", strconv.Itoa(n))
		w.Write(pattern(n))
	}))
	defer be.Close()
	yaml, vars := basicConfig(hostport(be))
	yaml, cfg := tlsListener(t, yaml)
	tg := startGateway(t, yaml, vars)
	conn, err := tls.Dial("tcp", tg.addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	br := bufio.NewReader(conn)
	for round := range 2 {
		for _, n := range []int{0, 1, 300, 1300, 5000, 20000, 70000, 300} {
			fmt.Fprintf(conn, "GET /%d HTTP/1.1\r\nHost: h\r\n\r\n", n)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatalf("round %d, %d bytes: %v", round, n, err)
			}
			body, err := io.ReadAll(resp.Body)
			if err != nil || resp.StatusCode != 200 || !bytes.Equal(body, pattern(n)) {
				t.Fatalf("round %d: got %d with %d bytes (%v), want 200 with the %d bytes sent", round, resp.StatusCode, len(body), err, n)
			}
		}
	}
}

// pattern is n bytes that differ from one offset to the next, so a repeated or lost piece
// shows.
func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + i*7%26)
	}
	return b
}

// batchConn sends what is written only at flush, in one write: two TLS records then reach
// the gateway in one segment.
type batchConn struct {
	net.Conn
	batch bool
	buf   []byte
}

func (c *batchConn) Write(b []byte) (int, error) {
	if c.batch {
		c.buf = append(c.buf, b...)
		return len(b), nil
	}
	return c.Conn.Write(b)
}

func (c *batchConn) flush() error {
	c.batch = false
	_, err := c.Conn.Write(c.buf)
	c.buf = c.buf[:0]
	return err
}

// TestTLSPipelinedRecordIsAnswered: two requests in two TLS records that arrive together
// leave the second in crypto/tls's buffer, so the wait for it does not reach the socket and
// cannot send what it holds there. The first response must still go out at once: here the
// second request waits upstream until the client has read the first answer.
func TestTLSPipelinedRecordIsAnswered(t *testing.T) {
	release := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			select {
			case <-release:
			case <-time.After(10 * time.Second):
			}
		}
		io.WriteString(w, r.URL.Path)
	}))
	defer be.Close()
	yaml, vars := basicConfig(hostport(be))
	yaml, cfg := tlsListener(t, yaml)
	tg := startGateway(t, yaml, vars)
	raw, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	bc := &batchConn{Conn: raw}
	conn := tls.Client(bc, cfg)
	conn.SetDeadline(time.Now().Add(20 * time.Second))
	if err := conn.Handshake(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	read := func(want string) {
		t.Helper()
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("%s: %v", want, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 || string(body) != want {
			t.Fatalf("got %d %q, want 200 %q", resp.StatusCode, body, want)
		}
	}
	for round := range 3 {
		bc.batch = true
		io.WriteString(conn, "GET /fast HTTP/1.1\r\nHost: h\r\n\r\n") // one record
		io.WriteString(conn, "GET /slow HTTP/1.1\r\nHost: h\r\n\r\n") // another
		if err := bc.flush(); err != nil {
			t.Fatal(err)
		}
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		read("/fast") // while /slow waits upstream for it
		release <- struct{}{}
		conn.SetReadDeadline(time.Now().Add(20 * time.Second))
		read("/slow")
		t.Logf("round %d answered", round)
	}
}
