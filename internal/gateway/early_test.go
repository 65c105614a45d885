package gateway

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// earlyBackend reads a request head, sends it on the returned channel, answers with reply
// before reading any of the body, and then either closes the connection (with the body
// unread, so the kernel resets it) or, when hold, keeps it open without reading until the
// test ends.
func earlyBackend(t *testing.T, reply string, hold bool) (addr string, heads <-chan string, conns *atomic.Int64) {
	t.Helper()
	ch := make(chan string, 16)
	done := make(chan struct{})
	t.Cleanup(func() { close(done) })
	conns = new(atomic.Int64)
	addr = serveConns(t, func(c net.Conn) {
		conns.Add(1)
		head, err := readHeadBytes(bufio.NewReader(c))
		ch <- head
		if err != nil {
			return
		}
		io.WriteString(c, reply)
		if hold {
			<-done
		}
	})
	return addr, ch, conns
}

// upload sends head and then size bytes of body on a new connection (from another
// goroutine: the gateway may answer before it is all sent), the bytes past first only once
// the answer is in, and returns everything the gateway sent back until it closed the
// connection, and how long that took.
func upload(t *testing.T, addr, head string, size, first int) (string, time.Duration) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	answered := make(chan struct{})
	go func() {
		if _, err := io.WriteString(c, head); err != nil {
			return
		}
		chunk := []byte(strings.Repeat("u", 64<<10))
		for sent := 0; sent < size; sent += len(chunk) {
			if sent == first {
				<-answered
			}
			if _, err := c.Write(chunk[:min(len(chunk), size-sent)]); err != nil {
				return
			}
		}
		c.(*net.TCPConn).CloseWrite()
	}()
	c.SetReadDeadline(time.Now().Add(15 * time.Second))
	out, err := io.ReadAll(c)
	if err != nil {
		t.Errorf("reading the answer: %v (after %d bytes)", err, len(out))
	}
	close(answered)
	return string(out), time.Since(start)
}

// TestEarlyResponseWhileTheBodyIsSent: a backend that answers before it has read the request
// body (RFC 9112 §9.5) gets its answer delivered, whether it closes the connection (and so
// resets it: the body is unread) or stops reading and waits; the gateway stops sending the
// body, closes the client connection after the answer (the rest of the body is not read) and
// never retries: a final response means the request was processed. The result must not
// depend on timing, so each case runs three times with a 16 MiB body sent at once (far more
// than the socket buffers between the gateway and the backend take, so the gateway is still
// sending when the answer comes) and with a 2 MiB body of which the client sends 1 MiB
// before it waits for the answer (the gateway waits on the client when it comes).
func TestEarlyResponseWhileTheBodyIsSent(t *testing.T) {
	cases := []struct {
		name  string
		reply string
		hold  bool
		route string
		want  string // the client's bytes after the status line's "HTTP/1.1 "
	}{
		{
			name:  "413 and close",
			reply: "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large",
			want:  "413 Payload Too Large\r\nX-Request-Id: %s\r\nContent-Length: 9\r\nConnection: close\r\n\r\ntoo large",
		},
		{
			// timeouts far above the test's bound: the answer must not wait for them
			name:  "401 and stop reading",
			reply: "HTTP/1.1 401 Unauthorized\r\nContent-Length: 4\r\n\r\nnope",
			hold:  true,
			route: "timeouts: {read: 30s, write: 30s}",
			want:  "401 Unauthorized\r\nX-Request-Id: %s\r\nContent-Length: 4\r\nConnection: close\r\n\r\nnope",
		},
		{
			// an idempotent request on a route that retries 503: the early 503 is the answer
			name:  "503 on a retrying route",
			reply: "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
			route: "retry: {on: [status, reset_before_response, timeout], statuses: [503], attempts: 3}",
			want:  "503 Service Unavailable\r\nX-Request-Id: %s\r\nContent-Length: 4\r\nConnection: close\r\n\r\nbusy",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			be, heads, conns := earlyBackend(t, tc.reply, tc.hold)
			tg := edgeGateway(t, be, "", tc.route)
			n := 0
			for _, body := range []struct{ size, first int }{{16 << 20, 16 << 20}, {2 << 20, 1 << 20}} {
				size := body.size
				for range 3 {
					id := "early-" + strconv.Itoa(n)
					n++
					head := "PUT /up HTTP/1.1\r\nHost: h\r\nX-Request-Id: " + id + "\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
					out, took := upload(t, tg.addr, head, size, body.first)
					wantBytes(t, "backend read", received(t, heads), "PUT /up HTTP/1.1\r\nHost: h\r\n"+forwarded("h", id)+
						"Content-Length: "+strconv.Itoa(size)+"\r\n\r\n")
					wantBytes(t, "client got", out, "HTTP/1.1 "+strings.Replace(tc.want, "%s", id, 1))
					if took > 5*time.Second {
						t.Errorf("%d bytes: the answer took %v", size, took)
					}
				}
			}
			if c := conns.Load(); c != int64(n) {
				t.Errorf("backend saw %d connections for %d requests: an early answer was retried or its connection reused", c, n)
			}
			for _, l := range tg.accessLines(n) {
				wantFields(t, l, map[string]any{"early_response": true, "reason": nil, "attempts": 1})
			}
			// The bodies went socket to socket (splice) until the answer came.
			f, _ := scrape(t, tg.adminURL("/metrics"))
			if v, _ := f.value("sluice_spliced_bytes_total", map[string]string{"direction": "request"}); v == 0 {
				t.Error("no request body bytes were spliced: the splice path was not under test")
			}
		})
	}
}

// TestInterimResponseWhileTheBodyIsSent: an interim response that comes while the body is
// sent (103 Early Hints right after the head) goes to the client, and the body goes on: the
// backend reads all of it and answers.
func TestInterimResponseWhileTheBodyIsSent(t *testing.T) {
	const size = 4 << 20
	be, bodies := bodyReadingBackend(t, size, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	tg := edgeGateway(t, be, "", "")
	head := "PUT /up HTTP/1.1\r\nHost: h\r\nX-Request-Id: early-1x\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
	out := pausedUpload(t, tg.addr, head, size)
	wantBytes(t, "client got", out, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"+
		"HTTP/1.1 200 OK\r\nX-Request-Id: early-1x\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	if n := <-bodies; n != size {
		t.Errorf("backend read %d body bytes, want %d", n, size)
	}
	wantFields(t, tg.accessLines(1)[0], map[string]any{"status": 200, "interim_responses": 1, "early_response": nil, "bytes_in": size})
}

// TestRetryAfterAResetWhileTheBodyIsSent: the first attempt's body write meets a reset with no
// answer before it (the failure stands, and an idempotent request whose body is held is
// retried); the second attempt's backend reads slowly, so its body waits are watched: they must
// watch this attempt's upstream, not report the first one's reset again.
func TestRetryAfterAResetWhileTheBodyIsSent(t *testing.T) {
	const size = 8 << 20
	var conns atomic.Int64
	be := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHeadBytes(br); err != nil {
			return
		}
		if conns.Add(1) == 1 {
			io.CopyN(io.Discard, br, 1<<10)
			c.(*net.TCPConn).SetLinger(0) // RST
			return
		}
		buf := make([]byte, 1<<20)
		for got := 0; got < size; {
			n, err := io.ReadFull(br, buf[:min(len(buf), size-got)])
			got += n
			if err != nil {
				return
			}
			time.Sleep(60 * time.Millisecond) // a slow reader: the gateway's writes wait
		}
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	tg := edgeGateway(t, be, "", "retry: {buffer_body: 16777216, backoff_base: 1ms, backoff_max: 2ms}")
	head := "PUT /up HTTP/1.1\r\nHost: h\r\nX-Request-Id: early-retry\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
	out, _ := upload(t, tg.addr, head, size, size)
	wantBytes(t, "client got", out, "HTTP/1.1 200 OK\r\nX-Request-Id: early-retry\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	if n := conns.Load(); n != 2 {
		t.Errorf("backend saw %d connections, want 2 (the first reset, the retry)", n)
	}
	wantFields(t, tg.accessLines(1)[0], map[string]any{"status": 200, "attempts": 2, "early_response": nil})
}

// TestEarly2xxTakesTheRestOfTheBody: a backend that sends its 200 head at once and reads the
// body while it answers (the response body comes after) has not refused the body: the
// gateway sends all of it, and then relays the response, as before the watch existed.
// Stopping at the head would leave the backend waiting for the rest.
func TestEarly2xxTakesTheRestOfTheBody(t *testing.T) {
	const size = 4 << 20
	be, bodies := bodyReadingBackend(t, size, "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n", "received")
	tg := edgeGateway(t, be, "", "timeouts: {read: 5s}")
	head := "PUT /up HTTP/1.1\r\nHost: h\r\nX-Request-Id: early-2xx\r\nConnection: close\r\nContent-Length: " + strconv.Itoa(size) + "\r\n\r\n"
	out := pausedUpload(t, tg.addr, head, size)
	wantBytes(t, "client got", out, "HTTP/1.1 200 OK\r\nX-Request-Id: early-2xx\r\nContent-Length: 8\r\nConnection: close\r\n\r\nreceived")
	select {
	case n := <-bodies:
		if n != size {
			t.Errorf("backend read %d body bytes, want %d", n, size)
		}
	case <-time.After(5 * time.Second):
		t.Error("the backend did not get the body")
	}
	wantFields(t, tg.accessLines(1)[0], map[string]any{"status": 200, "early_response": nil, "bytes_in": size})
}

// bodyReadingBackend answers each request with head at once, reads size body bytes (sent on
// bodies), then sends tail.
func bodyReadingBackend(t *testing.T, size int64, head, tail string) (addr string, bodies chan int) {
	t.Helper()
	bodies = make(chan int, 1)
	addr = serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHeadBytes(br); err != nil {
			return
		}
		io.WriteString(c, head)
		n, _ := io.Copy(io.Discard, io.LimitReader(br, size))
		bodies <- int(n)
		io.WriteString(c, tail)
	})
	return addr, bodies
}

// pausedUpload sends head and a size-byte body in two halves with a pause between them,
// and returns all the client then read.
func pausedUpload(t *testing.T, addr, head string, size int) string {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	go func() {
		io.WriteString(c, head)
		c.Write(make([]byte, size/2))
		time.Sleep(300 * time.Millisecond) // a pause: the gateway waits on the client meanwhile
		c.Write(make([]byte, size/2))
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	out, _ := io.ReadAll(c)
	return string(out)
}
