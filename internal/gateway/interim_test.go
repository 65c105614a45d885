package gateway

import (
	"bufio"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/reason"
)

// TestInterimResponsesForwarded: 1xx responses other than 101 go to HTTP/1.1 clients as they
// come (RFC 9110 §15.2), except 100 Continue, which the gateway answers itself; HTTP/1.0
// clients get none. They are not the final response: its head follows as usual.
func TestInterimResponsesForwarded(t *testing.T) {
	be, got := recordingBackend(t, "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\nConnection: keep-alive\r\n\r\n"+
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
	tg := edgeGateway(t, be, "", "")
	cases := []struct {
		name, request, want string
		interim             any
	}{
		{"HTTP/1.1", "GET /e HTTP/1.1\r\nHost: h\r\nX-Request-Id: 1x-1\r\nConnection: close\r\n\r\n",
			"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n" +
				"HTTP/1.1 200 OK\r\nX-Request-Id: 1x-1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", 1},
		{"HTTP/1.0", "GET /e HTTP/1.0\r\nHost: h\r\nX-Request-Id: 1x-2\r\n\r\n",
			"HTTP/1.1 200 OK\r\nX-Request-Id: 1x-2\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", nil},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := rawExchange(t, tg.addr, tc.request, 5*time.Second)
			id := "1x-" + strconv.Itoa(i+1)
			wantBytes(t, "backend read", received(t, got), "GET /e HTTP/1.1\r\nHost: h\r\n"+forwarded("h", id)+"\r\n")
			wantBytes(t, "client got", out, tc.want)
			wantFields(t, tg.accessLines(i + 1)[i], map[string]any{"status": 200, "interim_responses": tc.interim})
		})
	}
}

// TestInterimResponsesDoNotExtendTheWait: a backend that sends 102 Processing every 100 ms
// and never answers is cut off at the route's read timeout, counted from the request, not
// from the last 1xx; the 102s it sent went to the client first.
func TestInterimResponsesDoNotExtendTheWait(t *testing.T) {
	be := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := readHeadBytes(br); err != nil {
			return
		}
		for range 50 {
			if _, err := io.WriteString(c, "HTTP/1.1 102 Processing\r\n\r\n"); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond) // the backend's pace under test
		}
	})
	tg := edgeGateway(t, be, "", "timeouts: {read: 500ms}")
	start := time.Now()
	out := rawExchange(t, tg.addr, "GET /p HTTP/1.1\r\nHost: h\r\nX-Request-Id: 1x-3\r\nConnection: close\r\n\r\n", 10*time.Second)
	took := time.Since(start)
	rest := strings.TrimLeft(strings.ReplaceAll(out, "HTTP/1.1 102 Processing\r\n\r\n", "."), ".")
	if !strings.HasPrefix(out, "HTTP/1.1 102 Processing\r\n\r\n") {
		t.Errorf("client got %q, want the 102s first", out)
	}
	// No target in the body: errors.expose_details is off by default.
	body := `{"error":"upstream_timeout","status":504,"message":"` + reason.Describe(reason.ResponseTimeout) +
		`","request_id":"1x-3"}` + "\n"
	wantBytes(t, "client got after the 102s", rest, "HTTP/1.1 504 Gateway Timeout\r\nContent-Type: application/json\r\n"+
		"X-Sluice-Error: upstream_timeout\r\nX-Request-Id: 1x-3\r\nContent-Length: "+strconv.Itoa(len(body))+
		"\r\nConnection: close\r\n\r\n"+body)
	if took > 2*time.Second {
		t.Errorf("the 504 came after %v; the read timeout is 500ms", took)
	}
	l := tg.accessLines(1)[0]
	wantFields(t, l, map[string]any{"status": 504, "reason": "upstream_timeout"})
	if n, _ := l["interim_responses"].(float64); n < 1 || n > 7 || int(n) != strings.Count(out, " 102 ") {
		t.Errorf("access log interim_responses = %v, want the ~5 sent in 500ms, as the client got %d", l["interim_responses"], strings.Count(out, " 102 "))
	}
}
