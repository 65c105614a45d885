package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Deadlines are armed only before reads and writes that reach a socket (a complete head in
// the buffer, or a response that fits the write buffer, arms nothing). These tests pin the
// cases where a deadline left from an earlier step or an earlier request could fire wrongly,
// and the cases where a timeout must still fire.

// pausingBackend answers every request on a keep-alive connection with a head and a body
// written in the given pieces, sleeping pause before each piece after the first.
func pausingBackend(t *testing.T, pause time.Duration, pieces ...string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					for i, p := range pieces {
						if i > 0 {
							time.Sleep(pause)
						}
						if _, err := io.WriteString(c, p); err != nil {
							return
						}
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func TestUpstreamHeadSplitAcrossPausesLongerThanTheClientCheck(t *testing.T) {
	// The wait for the first response byte re-arms every 250 ms to look for a departed
	// client; the rest of a split head must be read under the whole read timeout.
	be := pausingBackend(t, 400*time.Millisecond,
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n",
		"Content-Length: 5\r\n\r\n",
		"hello")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: b
    targets: [{address: {{b}}}]
    timeouts: {read: 2s}
routes: [{id: all, upstream: b}]
`, map[string]string{"b": be})
	c := newClient()
	for i := 0; i < 2; i++ { // the second request reuses the pooled connection
		resp, err := c.Get(tg.url("/split"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		mustStatus(t, resp, 200)
		if string(body) != "hello" {
			t.Fatalf("request %d: body %q, want hello", i, body)
		}
	}
}

func TestUpstreamBodyPauseWithinAndBeyondTheReadTimeout(t *testing.T) {
	// Head complete at once, body after a pause: the body read gets the route's read
	// timeout, not whatever the head wait left armed.
	within := pausingBackend(t, 600*time.Millisecond, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hello")
	beyond := pausingBackend(t, 1500*time.Millisecond, "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "hello")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: within
    targets: [{address: {{w}}}]
    timeouts: {read: 1s}
  - id: beyond
    targets: [{address: {{b}}}]
    timeouts: {read: 1s}
routes:
  - {id: beyond, match: {path: /beyond}, upstream: beyond}
  - {id: within, upstream: within}
`, map[string]string{"w": within, "b": beyond})
	c := newClient()
	for i := 0; i < 2; i++ {
		resp, err := c.Get(tg.url("/within"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(body) != "hello" {
			t.Fatalf("within, request %d: %d %q, want 200 hello", i, resp.StatusCode, body)
		}
	}
	start := time.Now()
	resp, err := c.Get(tg.url("/beyond"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil || string(body) == "hello" {
		t.Fatalf("beyond: body %q, err %v; want a truncated body (the read timeout fires mid-body)", body, err)
	}
	if d := time.Since(start); d < 900*time.Millisecond || d > 1400*time.Millisecond {
		t.Errorf("beyond: the body read failed after %v, want about the 1s read timeout", d)
	}
	lines := tg.accessLines(3)
	if got := lines[len(lines)-1]["reason"]; got != "upstream_timeout" {
		t.Errorf("access log reason = %v, want upstream_timeout", got)
	}
}

func TestClientWriteTimeoutAfterAnIdleGapOnAKeptAliveConnection(t *testing.T) {
	// A small response arms no write deadline of its own beyond its flush; a large one on the
	// same connection, after an idle gap longer than write_timeout, must not meet an expired
	// deadline left from the first.
	big := strings.Repeat("x", 4<<20)
	be := pausingBackend(t, 0, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big))
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, write_timeout: 300ms}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": be})
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	get := func() (int, error) {
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			return 0, err
		}
		n, err := io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return int(n), err
	}
	if n, err := get(); err != nil || n != len(big) {
		t.Fatalf("first response: %d bytes, %v", n, err)
	}
	time.Sleep(700 * time.Millisecond) // > write_timeout, < idle_timeout
	if n, err := get(); err != nil || n != len(big) {
		t.Fatalf("second response after an idle gap: %d bytes, %v; want %d (a stale write deadline?)", n, err, len(big))
	}
}

func TestClientWriteTimeoutFiresOnAClientThatStopsReading(t *testing.T) {
	big := strings.Repeat("x", 32<<20) // far more than the socket buffers hold
	be := pausingBackend(t, 0, fmt.Sprintf("HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s", len(big), big))
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, write_timeout: 300ms}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": be})
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.(*net.TCPConn).SetReadBuffer(64 << 10)
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	time.Sleep(1500 * time.Millisecond) // read nothing: the gateway's writes stall
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := io.Copy(io.Discard, conn)
	if n >= int64(len(big)) {
		t.Fatalf("read %d bytes: the whole response arrived; want the gateway to give up on the stalled client", n)
	}
	lines := tg.accessLines(1)
	// 499: the client side failed (here: stopped reading), whatever status had gone out.
	if got, reason := lines[0]["status"], lines[0]["reason"]; got != float64(499) || reason == nil || reason == "" {
		t.Errorf("access log status = %v, reason %v; want 499 with a reason", got, reason)
	}
}

func TestClientHeadSplitAcrossAPause(t *testing.T) {
	// The first bytes end the idle wait (whose deadline is short); the rest of the head is
	// read under read_header_timeout.
	be := echoBackend(t, "a")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, read_header_timeout: 2s}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": hostport(be)})
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	for i := 0; i < 2; i++ {
		io.WriteString(conn, "GET /split HTTP/1.1\r\nHo")
		time.Sleep(300 * time.Millisecond)
		io.WriteString(conn, "st: t\r\n\r\n")
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		mustStatus(t, resp, 200)
	}
}

// The cases below came from a review of the deadline change (each failed before its fix).

// A malformed second request on a kept-alive connection, sent after an idle gap longer than
// write_timeout, must still get its 400.
func TestMalformedRequestAfterAnIdleGapLongerThanWriteTimeoutGets400(t *testing.T) {
	be := echoBackend(t, "a")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, write_timeout: 300ms, idle_timeout: 10s}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": hostport(be)})
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	time.Sleep(700 * time.Millisecond) // > write_timeout
	io.WriteString(conn, "GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a malformed request after an idle gap: %v", err)
	}
	if resp.StatusCode != 400 {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
}

// Same for the 408 of a head that stalls.
func TestStalledHeadAfterAnIdleGapGets408(t *testing.T) {
	be := echoBackend(t, "a")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, write_timeout: 300ms, read_header_timeout: 500ms, idle_timeout: 10s}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": hostport(be)})
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	time.Sleep(700 * time.Millisecond)
	io.WriteString(conn, "GET / HTTP/1.1\r\nHo")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no 408 for a stalled head after an idle gap: %v", err)
	}
	if resp.StatusCode != 408 {
		t.Fatalf("status %d, want 408", resp.StatusCode)
	}
}

func splitBackend(t *testing.T, pause time.Duration, first, rest string) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					io.Copy(io.Discard, req.Body)
					io.WriteString(c, first)
					time.Sleep(pause)
					if _, err := io.WriteString(c, rest); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// An interim 1xx arriving with the start of the final head: the rest of the final head must
// be read under the read timeout, not the 250 ms client-check step.
func TestInterimResponseThenAFinalHeadSplitAcrossAPause(t *testing.T) {
	be := splitBackend(t, 400*time.Millisecond,
		"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-",
		"Length: 5\r\n\r\nhello")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: b
    targets: [{address: {{b}}}]
    timeouts: {read: 2s}
routes: [{id: all, upstream: b}]
`, map[string]string{"b": be})
	resp, err := newClient().Get(tg.url("/x"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("got %d %q (X-Sluice-Error %q), want 200 hello", resp.StatusCode, body, resp.Header.Get("X-Sluice-Error"))
	}
}

// A chunked body whose first segment ends inside chunk framing (the data's CRLF split):
// the next read must run under the read timeout, not the head wait's 250 ms step.
func TestChunkFramingSplitAcrossAPauseAfterABufferedHead(t *testing.T) {
	be := splitBackend(t, 400*time.Millisecond,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r",
		"\n0\r\n\r\n")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: b
    targets: [{address: {{b}}}]
    timeouts: {read: 2s}
routes: [{id: all, upstream: b}]
`, map[string]string{"b": be})
	resp, err := newClient().Get(tg.url("/x"))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || string(body) != "hello" {
		t.Fatalf("got %q, %v; want hello", body, err)
	}
	lines := tg.accessLines(1)
	if r := lines[0]["reason"]; r != nil {
		t.Fatalf("access log reason %v", r)
	}
}

// Leading empty lines (tolerated by h1.ReadRequest) must not pass for a complete head: the
// rest is read under read_header_timeout, not the 10 ms fast-wait deadline.
func TestLeadingEmptyLinesBeforeASplitHead(t *testing.T) {
	be := echoBackend(t, "a")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": hostport(be)})
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	io.WriteString(conn, "\r\n\r\nGET /2 HTTP/1.1\r\nHo") // within the 10 ms fast wait
	time.Sleep(100 * time.Millisecond)
	io.WriteString(conn, "st: t\r\n\r\n")
	resp, err = http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("second request: %v", err)
	}
	resp.Body.Close()
}
