package gateway

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestRefusedDurationFromFirstByte: a request the gateway refuses while reading it is logged
// with the time since its first byte, not the time to write the answer (which read 0.1 ms
// for a head dribbled over seconds): a malformed head, one too large and one too slow, each
// sent over 300 ms or more, log duration_ms >= 300 (HTTP/2: a header block whose
// CONTINUATION comes 300 ms after its HEADERS). On a kept-alive connection the time starts at
// the request's own first byte, not at the previous request: a bad request sent whole after
// a second of idling logs less than that second.
func TestRefusedDurationFromFirstByte(t *testing.T) {
	const gap = 150 * time.Millisecond
	tg := echoGateway(t, "read_header_timeout: 500ms, max_header_bytes: 4096, protocols: [http1, h2c]")
	dribble := func(t *testing.T, c net.Conn, parts ...string) {
		t.Helper()
		for i, p := range parts {
			if i > 0 {
				time.Sleep(gap)
			}
			if _, err := io.WriteString(c, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	cases := []struct {
		name   string
		send   func(t *testing.T, c net.Conn)
		status float64
		min    float64 // duration_ms at least
		under  float64 // duration_ms below (0: no bound)
	}{
		{name: "malformed", status: 400, min: 300, send: func(t *testing.T, c net.Conn) {
			dribble(t, c, "GET /malformed HTTP/1.1\r\n", "Host: site.test\r\n", "no colon here\r\n\r\n")
		}},
		{name: "too large", status: 431, min: 300, send: func(t *testing.T, c net.Conn) {
			dribble(t, c, "GET /large HTTP/1.1\r\n", "Host: site.test\r\n", "X-Big: "+strings.Repeat("b", 5000)+"\r\n\r\n")
		}},
		{name: "too slow", status: 408, min: 300, send: func(t *testing.T, c net.Conn) {
			dribble(t, c, "GET /slow HTTP/1.1\r\n") // and nothing more: read_header_timeout (500ms)
		}},
		{name: "kept alive", status: 400, min: 0, under: 900, send: func(t *testing.T, c net.Conn) {
			io.WriteString(c, "GET /first HTTP/1.1\r\nHost: site.test\r\n\r\n")
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("first request: %v %v", resp, err)
			}
			io.Copy(io.Discard, resp.Body) // the echo's body, all buffered: nothing is left behind
			resp.Body.Close()
			time.Sleep(time.Second)
			io.WriteString(c, "GET /second HTTP/1.1\r\nHost: site.test\r\nno colon here\r\n\r\n")
		}},
	}
	n := 0
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := net.Dial("tcp", tg.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			tc.send(t, c)
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			io.Copy(io.Discard, c) // the answer; the gateway closes the connection after it
			n++
			if tc.name == "kept alive" {
				n++
			}
			checkRefusedLine(t, tg.accessLines(n)[n-1], tc.status, tc.min, tc.under)
		})
	}
	t.Run("h2 continuation", func(t *testing.T) {
		r := dialRawH2(t, &h2Site{testGateway: tg})
		block := r.block("GET", "/h2large", hpack.HeaderField{Name: "x-big", Value: strings.Repeat("b", 5000)})
		half := len(block) / 2
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block[:half], EndStream: true})
		time.Sleep(2 * gap)
		r.fr.WriteContinuation(1, true, block[half:])
		if res := r.readUntil(5*time.Second, func(res h2Result) bool { return res.ended[1] }); res.status[1] != "431" {
			t.Fatalf("status %q; want 431", res.status[1])
		}
		n++
		checkRefusedLine(t, tg.accessLines(n)[n-1], 431, 300, 0)
	})
}

func checkRefusedLine(t *testing.T, l map[string]any, status, min, under float64) {
	t.Helper()
	d, _ := l["duration_ms"].(float64)
	if l["status"] != status || d < min || under > 0 && d >= under {
		t.Errorf("access log: path %v status %v duration_ms %v; want %v, duration_ms >= %v (below %v: 0 is no bound)",
			l["path"], l["status"], l["duration_ms"], status, min, under)
	}
}
