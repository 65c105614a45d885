package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// HTTP/1.1 semantics at the edges (issue #15): each test sends raw request bytes and asserts
// the bytes the backend read and the bytes the client got, exactly, and the access log line.
// The backends are raw sockets (serveConns), so nothing normalises what crosses the wire.

// readHeadBytes reads a message head through the empty line that ends it, as raw bytes.
func readHeadBytes(br *bufio.Reader) (string, error) {
	var b strings.Builder
	for {
		line, err := br.ReadString('\n')
		b.WriteString(line)
		if err != nil || line == "\r\n" {
			return b.String(), err
		}
	}
}

// readBodyBytes reads the body that head frames (chunked with its trailer section, or
// Content-Length), as raw bytes.
func readBodyBytes(br *bufio.Reader, head string) (string, error) {
	lower := strings.ToLower(head)
	var b strings.Builder
	if strings.Contains(lower, "\r\ntransfer-encoding: chunked\r\n") {
		for {
			line, err := br.ReadString('\n')
			b.WriteString(line)
			if err != nil {
				return b.String(), err
			}
			size, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(line, ";", 2)[0]), 16, 64)
			if err != nil {
				return b.String(), err
			}
			if size == 0 {
				trailer, err := readHeadBytes(br)
				return b.String() + trailer, err
			}
			data := make([]byte, size+2)
			_, err = io.ReadFull(br, data)
			b.Write(data)
			if err != nil {
				return b.String(), err
			}
		}
	}
	i := strings.Index(lower, "\r\ncontent-length: ")
	if i < 0 {
		return "", nil
	}
	v := lower[i+len("\r\ncontent-length: "):]
	n, err := strconv.Atoi(v[:strings.Index(v, "\r\n")])
	if err != nil {
		return "", err
	}
	data := make([]byte, n)
	_, err = io.ReadFull(br, data)
	return string(data), err
}

// recordingBackend answers each request with reply after reading it whole, and sends what it read
// (head and body, raw) on the returned channel.
func recordingBackend(t *testing.T, reply string) (addr string, got <-chan string) {
	t.Helper()
	ch := make(chan string, 16)
	addr = serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			head, err := readHeadBytes(br)
			if err != nil {
				return
			}
			body, err := readBodyBytes(br, head)
			ch <- head + body
			if err != nil {
				return
			}
			if _, err := io.WriteString(c, reply); err != nil {
				return
			}
		}
	})
	return addr, ch
}

// edgeGateway starts a gateway with one listener (listener: extra options, or "") and one
// route (route: extra options, or "") to backend.
func edgeGateway(t *testing.T, backend, listener, route string) *testGateway {
	t.Helper()
	if listener != "" {
		listener = ", " + listener
	}
	if route != "" {
		route = ", " + route
	}
	return startGateway(t, `
listeners: [{address: 127.0.0.1:0`+listener+`}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b`+route+`}]
admin: {address: 127.0.0.1:0}
`, map[string]string{"b": backend})
}

// waitMetric waits until the series of name with labels has value want.
func waitMetric(t *testing.T, tg *testGateway, name string, labels map[string]string, want float64) {
	t.Helper()
	var got float64
	testutil.WaitFor(t, 3*time.Second, fmt.Sprintf("%s%v = %v", name, labels, want), func() bool {
		f, _ := scrape(t, tg.adminURL("/metrics"))
		got, _ = f.value(name, labels)
		return got == want
	})
}

// received waits for what the backend read.
func received(t *testing.T, got <-chan string) string {
	t.Helper()
	select {
	case s := <-got:
		return s
	case <-time.After(5 * time.Second):
		t.Fatal("the backend received no request")
		return ""
	}
}

// wantBytes reports a difference between got and want, with both quoted. When want has no
// Date field, the gateway's own (a current IMF-fixdate, added to every response head that
// has none: TestDateField) is taken out of got first.
func wantBytes(t *testing.T, what, got, want string) {
	t.Helper()
	if !strings.Contains(want, "\r\nDate: ") {
		got = withoutGatewayDate(got)
	}
	if got != want {
		t.Errorf("%s:\n got %q\nwant %q", what, got, want)
	}
}

// withoutGatewayDate removes from s the Date fields whose value is the current time.
func withoutGatewayDate(s string) string {
	const field = "\r\nDate: "
	n := len(field) + len(http.TimeFormat)
	for i := 0; i+n+2 <= len(s); i++ {
		if s[i:i+len(field)] != field || s[i+n:i+n+2] != "\r\n" {
			continue
		}
		if d, err := http.ParseTime(s[i+len(field) : i+n]); err == nil && time.Since(d).Abs() < time.Minute {
			s = s[:i] + s[i+n:]
		}
	}
	return s
}

// wantFields reports access log fields of line l that differ from want (nil: absent).
func wantFields(t *testing.T, l map[string]any, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if n, ok := v.(int); ok {
			v = float64(n) // JSON numbers
		}
		if got, ok := l[k]; v == nil && ok || v != nil && got != v {
			t.Errorf("access log %s = %v, want %v", k, got, v)
		}
	}
}

// forwarded is what the gateway adds to a request from the test client with id.
func forwarded(host, id string) string {
	return "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Forwarded-Host: " + host + "\r\nX-Request-Id: " + id + "\r\n"
}

// TestStreamedChunksGoUpstreamAsTheyCome: each chunk of a chunked upload reaches the backend
// when it arrives, not when the next one does (streaming uploads, long-poll request bodies).
func TestStreamedChunksGoUpstreamAsTheyCome(t *testing.T) {
	parts := make(chan string, 3)
	be := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		head, err := readHeadBytes(br)
		if err != nil {
			return
		}
		// Each read must complete before the client sends the next part.
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		for i, n := range []int{10, 8} {
			buf := make([]byte, n)
			got, _ := io.ReadFull(br, buf)
			if i == 0 {
				parts <- head + string(buf[:got])
			} else {
				parts <- string(buf[:got])
			}
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		rest, _ := readHeadBytes(br) // the last-chunk and the empty trailer: "0\r\n" "\r\n"
		parts <- rest
		io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	})
	tg := edgeGateway(t, be, "", "")
	c := openConn(t, tg.addr)
	io.WriteString(c, "POST /s HTTP/1.1\r\nHost: h\r\nX-Request-Id: ch-1\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	wantBytes(t, "backend read first", received(t, parts), "POST /s HTTP/1.1\r\nHost: h\r\n"+forwarded("h", "ch-1")+
		"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
	io.WriteString(c, "3\r\nabc\r\n")
	wantBytes(t, "backend read second", received(t, parts), "3\r\nabc\r\n")
	io.WriteString(c, "0\r\n\r\n")
	wantBytes(t, "backend read last", received(t, parts), "0\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	out, _ := io.ReadAll(c)
	wantBytes(t, "client got", string(out), "HTTP/1.1 200 OK\r\nX-Request-Id: ch-1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
	wantFields(t, tg.accessLines(1)[0], map[string]any{"status": 200, "bytes_in": 8})
}
