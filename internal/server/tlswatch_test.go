package server

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"sluice/internal/h1"
	"sluice/internal/netio"
	"sluice/internal/testutil"
)

// TestTLSBodyWaitWatched: over TLS, a wait for request body bytes that its watch stops
// (Exchange.WatchBody) fails with netio.ErrWatchStopped, and the connection stays readable:
// the rest of the body, whose record had begun to arrive before the stop (the watch stops
// only then), is read afterwards whole. crypto/tls keeps a failure of the socket's Read that
// is not temporary for every later Read: the lingering close after an early answer would
// then read nothing, and the record's first bytes would be lost. A socket that is not a
// netio.Conn is not watched: the read waits for the body as before.
func TestTLSBodyWaitWatched(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, sock := range []string{"netio", "other"} {
		t.Run(sock, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			var l net.Listener = ln
			if sock == "other" {
				l = otherConns{ln}
			}
			st := Settings{Name: "t", ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
				IdleTimeout: 5 * time.Second, HandshakeTimeout: 5 * time.Second, Limits: h1.Limits{MaxHeaderBytes: 65536, MaxHeaders: 100},
				TLS: ca.ServerConfig(t, "srv.test")}
			h := &watchStopHandler{stopped: make(chan watchStop, 1)}
			serveUntilEnd(t, l, st, h)

			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			sc := &splitConn{Conn: nc, release: make(chan struct{})}
			tc := tls.Client(sc, ca.ClientConfig("srv.test"))
			tc.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.WriteString(tc, "PUT / HTTP/1.1\r\nHost: srv.test\r\nContent-Length: 10\r\n\r\nabc"); err != nil {
				t.Fatal(err)
			}
			sc.hold = 3 // the next record's first 3 bytes, then a pause
			go io.WriteString(tc, "defghij")
			if sock == "other" {
				close(sc.release)
			}
			s := <-h.stopped
			switch {
			case sock == "netio" && !errors.Is(s.err, netio.ErrWatchStopped):
				t.Errorf("the watched read: %v, want netio.ErrWatchStopped", s.err)
			case sock == "other" && (s.err != nil || s.watched != 0):
				t.Errorf("the read: %v, the watch ran %d times; want the body, unwatched", s.err, s.watched)
			}
			if sock == "netio" {
				close(sc.release)
			}
			resp, err := http.ReadResponse(bufio.NewReader(tc), nil)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			if string(body) != "abcdefghij" {
				t.Errorf("the handler read %q, want the whole body", body)
			}
		})
	}
}

type watchStop struct {
	err     error
	watched int
}

// watchStopHandler reads the body's first bytes, then waits for more under a watch that
// stops the wait once the socket has given crypto/tls part of a record, reports that read,
// reads the rest of the body from the connection, and answers with the body it got.
type watchStopHandler struct{ stopped chan watchStop }

func (h *watchStopHandler) ServeH1(ex *Exchange) {
	buf := make([]byte, 16)
	n, _ := io.ReadFull(ex.Body(), buf[:3])
	var s watchStop
	ex.WatchBody(func() bool {
		s.watched++
		return ex.c.tlsFrame.AtBoundary()
	}, 5*time.Millisecond, 5*time.Millisecond)
	m, err := ex.ReadBody(buf[n:])
	ex.WatchBody(nil, 0, 0)
	s.err = err
	h.stopped <- s
	n += m
	if err != nil {
		// The stopped read failed the body: the rest is read from the connection.
		ex.c.setReadDeadline(5 * time.Second)
		m, _ = io.ReadFull(ex.c.br, buf[n:10])
		n += m
	}
	var hd h1.Header
	ex.WriteHead(200, nil, &hd, int64(n))
	ex.Write(buf[:n])
}

// splitConn is a client's socket whose next Write, when hold is set, sends hold bytes and
// waits for release before it sends the rest.
type splitConn struct {
	net.Conn
	hold    int
	release chan struct{}
}

func (c *splitConn) Write(b []byte) (int, error) {
	if k := c.hold; k > 0 && k < len(b) {
		c.hold = 0
		n, err := c.Conn.Write(b[:k])
		if err != nil {
			return n, err
		}
		<-c.release
		m, err := c.Conn.Write(b[k:])
		return n + m, err
	}
	return c.Conn.Write(b)
}
