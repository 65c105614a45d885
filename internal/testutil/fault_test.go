package testutil

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestFaultBackend(t *testing.T) {
	b := NewFaultBackend(t, func(req *http.Request, n int) Fault {
		switch {
		case req.URL.Path == "/reset" && n == 1:
			return Fault{Reset: true, ReadBody: 2}
		case req.URL.Path == "/park":
			return Fault{Park: true}
		}
		return Fault{}
	})
	send := func(c net.Conn, br *bufio.Reader, path, id, body string) (*http.Response, error) {
		t.Helper()
		req := "POST " + path + " HTTP/1.1\r\nHost: t\r\nX-Request-Id: " + id + "\r\nContent-Length: " +
			strconv.Itoa(len(body)) + "\r\n\r\n" + body
		if _, err := c.Write([]byte(req)); err != nil {
			return nil, err
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err == nil {
			_ = resp.Body.Close()
		}
		return resp, err
	}
	dial := func() (net.Conn, *bufio.Reader) {
		c, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, bufio.NewReader(c)
	}

	// A reset after part of the body: the client sees ECONNRESET, the request counts as
	// started but not answered; the same id then gets an answer with its whole body.
	c, br := dial()
	if _, err := send(c, br, "/reset", "r", "hello"); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reset request: %v, want ECONNRESET", err)
	}
	c, br = dial()
	resp, err := send(c, br, "/reset", "r", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if got := resp.Header.Get("X-Got"); !strings.HasPrefix(got, "5:2cf24dba5fb0a30e") {
		t.Errorf("X-Got %q, want the length and hash of \"hello\"", got)
	}
	if b.Started("r") != 2 || b.Answered("r") != 1 {
		t.Errorf("started %d, answered %d; want 2 and 1", b.Started("r"), b.Answered("r"))
	}

	// A parked connection looks idle but never reads; ResetIdle resets it (and the idle
	// keep-alive connection above).
	p, pbr := dial()
	if _, err := send(p, pbr, "/park", "p1", ""); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for b.Idle() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("%d idle connections, want 2", b.Idle())
		}
		time.Sleep(time.Millisecond)
	}
	if _, err := p.Write([]byte("GET /park HTTP/1.1\r\nHost: t\r\nX-Request-Id: p2\r\n\r\n")); err != nil {
		t.Fatal(err)
	}
	if n := b.ResetIdle(); n != 2 {
		t.Errorf("ResetIdle reset %d connections, want 2", n)
	}
	_ = p.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := pbr.ReadByte(); !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("parked connection after ResetIdle: %v, want ECONNRESET", err)
	}
	if b.Started("p2") != 0 || b.Accepted() != 3 {
		t.Errorf("request on a parked connection started %d times, accepted %d; want 0 and 3", b.Started("p2"), b.Accepted())
	}
}
