package gateway

import (
	"bufio"
	"context"
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

// scriptBackend answers every request on a keep-alive connection with pieces, sleeping
// pauses[i] before piece i (i > 0): the pauses are the slowness under test.
func scriptBackend(t *testing.T, pauses []time.Duration, pieces ...string) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			io.Copy(io.Discard, req.Body)
			for i, p := range pieces {
				if i > 0 {
					time.Sleep(pauses[i])
				}
				if _, err := io.WriteString(c, p); err != nil {
					return
				}
			}
		}
	})
}

// upstreamGateway starts a gateway with one catch-all route to the backend at addr; settings
// are lines of the upstream's config ("timeouts: {read: 2s}").
func upstreamGateway(t *testing.T, addr string, settings ...string) *testGateway {
	t.Helper()
	return startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: b
    targets: [{address: {{b}}}]
    `+strings.Join(settings, "\n    ")+`
routes: [{id: all, upstream: b}]
`, map[string]string{"b": addr})
}

// fetch GETs url with c and reads the whole body, returning the read's error with what
// arrived; the response's body is closed.
func fetch(t *testing.T, c *http.Client, url string) (*http.Response, []byte, error) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	return fetchReq(t, c, req)
}

// fetchReq is fetch for any request: a request that fails fails t.
func fetchReq(t *testing.T, c *http.Client, req *http.Request) (*http.Response, []byte, error) {
	t.Helper()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// pausingBackend is scriptBackend with the same pause before every piece after the first.
func pausingBackend(t *testing.T, pause time.Duration, pieces ...string) string {
	t.Helper()
	pauses := make([]time.Duration, len(pieces))
	for i := range pauses {
		pauses[i] = pause
	}
	return scriptBackend(t, pauses, pieces...)
}

func TestUpstreamHeadSplitAcrossPausesLongerThanTheClientCheck(t *testing.T) {
	// The wait for the first response byte re-arms every 250 ms to look for a departed
	// client; the rest of a split head must be read under the whole read timeout.
	be := pausingBackend(t, 400*time.Millisecond,
		"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n",
		"Content-Length: 5\r\n\r\n",
		"hello")
	tg := upstreamGateway(t, be, "timeouts: {read: 2s}")
	c := newClient()
	for i := 0; i < 2; i++ { // the second request reuses the pooled connection
		resp, body, _ := fetch(t, c, tg.url("/split"))
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
		resp, body, _ := fetch(t, c, tg.url("/within"))
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
	conn := openConn(t, tg.addr)
	get := func() (int, error) {
		fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: t\r\n\r\n")
		resp, err := http.ReadResponse(conn.br, nil)
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
	time.Sleep(700 * time.Millisecond) // the idle gap under test: > write_timeout, < idle_timeout
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
	lines := tg.accessLines(1) // read nothing until the gateway has given up: its writes stall
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, _ := io.Copy(io.Discard, conn)
	if n >= int64(len(big)) {
		t.Fatalf("read %d bytes: the whole response arrived; want the gateway to give up on the stalled client", n)
	}
	// 499: the client side failed (here: stopped reading), whatever status had gone out.
	if got, reason := lines[0]["status"], lines[0]["reason"]; got != float64(499) || reason == nil || reason == "" {
		t.Errorf("access log status = %v, reason %v; want 499 with a reason", got, reason)
	}
}

func TestClientHeadSplitAcrossAPause(t *testing.T) {
	// The first bytes end the idle wait (whose deadline is short); the rest of the head is
	// read under read_header_timeout.
	tg := echoGateway(t, "read_header_timeout: 2s")
	conn := openConn(t, tg.addr)
	for i := 0; i < 2; i++ {
		io.WriteString(conn, "GET /split HTTP/1.1\r\nHo")
		time.Sleep(300 * time.Millisecond) // the pause under test: past the short idle-wait deadline
		io.WriteString(conn, "st: t\r\n\r\n")
		resp, err := conn.response()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		mustStatus(t, resp, 200)
	}
}

// The cases below came from a review of the deadline change (each failed before its fix).

// A second request on a kept-alive connection, sent after an idle gap longer than
// write_timeout, still gets the gateway's answer: 400 for a malformed head, 408 for a head
// that stalls.
func TestGatewayAnswersAfterAnIdleGapLongerThanWriteTimeout(t *testing.T) {
	for _, tc := range []struct {
		name, listener, send string
		want                 int
	}{
		{"malformed request gets 400", "write_timeout: 300ms, idle_timeout: 10s",
			"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400},
		{"stalled head gets 408", "write_timeout: 300ms, read_header_timeout: 500ms, idle_timeout: 10s",
			"GET / HTTP/1.1\r\nHo", 408},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := echoGateway(t, tc.listener)
			conn := openConn(t, tg.addr)
			conn.get("/")
			time.Sleep(700 * time.Millisecond) // the idle gap under test: > write_timeout
			io.WriteString(conn, tc.send)
			resp, err := conn.response()
			if err != nil {
				t.Fatalf("no answer after an idle gap: %v", err)
			}
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d", resp.StatusCode, tc.want)
			}
		})
	}
}

// An interim 1xx arriving with the start of the final head: the rest of the final head must
// be read under the read timeout, not the 250 ms client-check step.
func TestInterimResponseThenAFinalHeadSplitAcrossAPause(t *testing.T) {
	be := pausingBackend(t, 400*time.Millisecond,
		"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-",
		"Length: 5\r\n\r\nhello")
	tg := upstreamGateway(t, be, "timeouts: {read: 2s}")
	resp, body, _ := fetch(t, newClient(), tg.url("/x"))
	if resp.StatusCode != 200 || string(body) != "hello" {
		t.Fatalf("got %d %q (X-Sluice-Error %q), want 200 hello", resp.StatusCode, body, resp.Header.Get("X-Sluice-Error"))
	}
}

// A chunked body whose first segment ends inside chunk framing (the data's CRLF split):
// the next read must run under the read timeout, not the head wait's 250 ms step.
func TestChunkFramingSplitAcrossAPauseAfterABufferedHead(t *testing.T) {
	be := pausingBackend(t, 400*time.Millisecond,
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r",
		"\n0\r\n\r\n")
	tg := upstreamGateway(t, be, "timeouts: {read: 2s}")
	_, body, err := fetch(t, newClient(), tg.url("/x"))
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
	tg := echoGateway(t, "")
	conn := openConn(t, tg.addr)
	conn.get("/")
	io.WriteString(conn, "\r\n\r\nGET /2 HTTP/1.1\r\nHo") // within the 10 ms fast wait
	// The pause under test: the rest comes after the fast wait.
	time.Sleep(100 * time.Millisecond)
	io.WriteString(conn, "st: t\r\n\r\n")
	resp, err := conn.response()
	if err != nil {
		t.Fatalf("second request: %v", err)
	}
	resp.Body.Close()
}

// From a second review (each failed before its fix).

// R1: mid-body, a socket segment that ends inside chunk framing ("1" of the next size line):
// the next read reaches the socket with bytes still buffered, so streamBody does not re-arm and
// it runs under the deadline armed before the previous read. Each upstream gap is 700 ms, under
// the 1 s read timeout.
func TestChunkFramingSplitMidBodyReadsUnderTheReadTimeout(t *testing.T) {
	be := scriptBackend(t, []time.Duration{0, 700 * time.Millisecond, 700 * time.Millisecond},
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
		"5\r\nworld\r\n1",
		"0\r\n0123456789abcdef\r\n0\r\n\r\n")
	tg := upstreamGateway(t, be, "timeouts: {read: 1s}")
	_, body, err := fetch(t, newClient(), tg.url("/x"))
	if err != nil || string(body) != "helloworld0123456789abcdef" {
		lines := tg.accessLines(1)
		t.Fatalf("got %q, %v; want the whole body (access log reason %v)", body, err, lines[0]["reason"])
	}
}

// R1b: same split, read timeout long: the bytes before the split ("world") are not flushed to
// the client while the gateway waits for the rest of the framing.
func TestChunkFramingSplitMidBodyFlushesWhatArrived(t *testing.T) {
	be := scriptBackend(t, []time.Duration{0, 200 * time.Millisecond, 1500 * time.Millisecond},
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n",
		"5\r\nworld\r\n1",
		"0\r\n0123456789abcdef\r\n0\r\n\r\n")
	tg := upstreamGateway(t, be, "timeouts: {read: 5s}")
	start := time.Now()
	resp, err := newClient().Get(tg.url("/x"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	buf := make([]byte, 10)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("%q reached the client after %v; the upstream sent it at ~200ms", buf, d)
	}
}

// R2: a chunked upload whose last-chunk arrives later than the route's write timeout after the
// last data chunk: sendBody flushes the buffered chunk and the terminator under the deadline
// armed before the head (or the last data write).
func TestChunkedUploadTerminatorAfterAPauseLongerThanTheWriteTimeout(t *testing.T) {
	be := echoBackend(t, "a")
	tg := upstreamGateway(t, hostport(be), "timeouts: {write: 1s}")
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	io.WriteString(conn, "POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	time.Sleep(1500 * time.Millisecond) // the pause under test: < read_timeout (60s), > upstream write (1s)
	io.WriteString(conn, "0\r\n\r\n")
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"body":"hello"`) {
		t.Fatalf("got %d %s (X-Sluice-Error %q); want 200 with the echoed body", resp.StatusCode, body, resp.Header.Get("X-Sluice-Error"))
	}
}

// R3: a client that sends a stray CRLF after its request (RFC 9112 §2.2 asks servers to ignore
// it) and then idles gets an unsolicited 408 once read_header_timeout passes: ReadRequest
// consumed the CRLF and waited for a request-line that never started.
func TestStrayCRLFAfterARequestThenIdleGetsNo408(t *testing.T) {
	tg := echoGateway(t, "read_header_timeout: 500ms, idle_timeout: 10s")
	conn := openConn(t, tg.addr)
	fmt.Fprintf(conn, "POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi\r\n") // extra CRLF after the body
	if _, err := conn.response(); err != nil {
		t.Fatal(err)
	}
	rest, _ := io.ReadAll(conn.br) // idle: what does the gateway send?
	if len(rest) > 0 {
		t.Fatalf("an idle client that sent only an empty line got %q", rest)
	}
}

// R3b: same on a new connection that sends just an empty line.
func TestNewConnectionSendingOnlyAnEmptyLineGetsNo408(t *testing.T) {
	tg := echoGateway(t, "read_header_timeout: 500ms")
	out := rawExchange(t, tg.addr, "\r\n", 3*time.Second)
	if out != "" {
		t.Fatalf("got %q", out)
	}
}

// R4: a new connection that has sent nothing is not woken by Shutdown: it waits in the
// first-byte Peek (state active) until read_header_timeout.
func TestShutdownDoesNotWaitForASilentNewConnection(t *testing.T) {
	tg := echoGateway(t, "read_header_timeout: 3s")
	openConn(t, tg.addr) // sends nothing
	// The listener accepts in order: once a later connection is answered, the silent one has
	// been accepted too (and not merely queued, which Shutdown would not wait for anyway).
	probe := openConn(t, tg.addr)
	mustStatus(t, probe.get("/"), 200)
	probe.Close()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tg.gw.Shutdown(ctx)
	if d := time.Since(start); d > time.Second {
		t.Fatalf("Shutdown took %v with one connection that sent nothing", d)
	}
}

// silentBackend reads a request and never answers.
func silentBackend(t *testing.T) string {
	t.Helper()
	return serveConns(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
			return
		}
		io.Copy(io.Discard, c)
	})
}

// TestResponseTimeoutFiresWithinItsSlack: the 250 ms client-check step of the response wait
// may run late, but never past the response timeout's own lateness (netio.Slack): with a
// 250 ms read timeout the 504 came at ~375 ms when the step armed its full 125 ms.
func TestResponseTimeoutFiresWithinItsSlack(t *testing.T) {
	be := silentBackend(t)
	tg := upstreamGateway(t, be, "timeouts: {read: 250ms}", "retry: {attempts: 1}")
	// 250 ms + Slack(250ms) = 281 ms, plus 40 ms for scheduling. A loaded machine adds more
	// than 40 ms to a run now and then, a step armed whole to every run: the best of up to 10
	// runs (the first within the bound ends them) tells the two apart.
	const bound, runs = 321 * time.Millisecond, 10
	best := time.Hour
	for i := 0; i < runs && best > bound; i++ {
		c := newClient() // a new client connection each time: a clean measurement
		start := time.Now()
		resp, err := c.Get(tg.url("/x"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		mustStatus(t, resp, 504)
		best = min(best, time.Since(start))
	}
	if best > bound {
		t.Fatalf("the 250ms response timeout fired after %v (best of %d); want at most 250ms + Slack 31ms (+ scheduling)", best, runs)
	}
}
