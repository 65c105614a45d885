package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSmugglingShapesNeverReachTheBackend sends each ambiguous or malformed request as raw
// bytes: the gateway must answer 4xx/5xx-for-version (or close) and forward nothing.
func TestSmugglingShapesNeverReachTheBackend(t *testing.T) {
	var hits atomic.Int64
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		io.Copy(io.Discard, r.Body)
	}))
	defer be.Close()
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)

	cases := []struct {
		name   string
		raw    string
		status string // expected status line prefix
	}{
		{"CL and TE", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"duplicate CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"differing CL", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", "HTTP/1.1 400"},
		{"CL list", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 4, 4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"CL sign", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"CL hex", "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 0x4\r\n\r\nabcd", "HTTP/1.1 400"},
		{"TE not chunked", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 501"},
		{"TE chunked twice", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 "},
		{"TE obfuscated", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"TE in HTTP/1.0", "POST / HTTP/1.0\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabcd\r\n0\r\n\r\n", ""},
		{"chunk size overflow", "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000004\r\nabcd\r\n0\r\n\r\n", ""},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\r\n b\r\n\r\n", "HTTP/1.1 400"},
		{"bare CR", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\rb\r\n\r\n", "HTTP/1.1 400"},
		{"bare LF", "GET / HTTP/1.1\nHost: h\n\n", "HTTP/1.1 400"},
		{"space in header name", "GET / HTTP/1.1\r\nHost: h\r\nX A: b\r\n\r\n", "HTTP/1.1 400"},
		{"NUL in value", "GET / HTTP/1.1\r\nHost: h\r\nX-A: a\x00b\r\n\r\n", "HTTP/1.1 400"},
		{"no host", "GET / HTTP/1.1\r\n\r\n", "HTTP/1.1 400"},
		{"two hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", "HTTP/1.1 400"},
		{"absolute-form userinfo", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 400"},
		{"absolute-form bad scheme", "GET ftp://h/ HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 400"},
		{"asterisk with GET", "GET * HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 400"},
		{"fragment in target", "GET /a#b HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 400"},
		{"HTTP/2.0 line", "GET / HTTP/2.0\r\nHost: h\r\n\r\n", "HTTP/1.1 505"},
		{"double space", "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", "HTTP/1.1 400"},
		{"CONNECT", "CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n", "HTTP/1.1 501"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			out := rawExchange(t, tg.addr, tc.raw, 3*time.Second)
			if tc.status != "" && !strings.HasPrefix(out, tc.status) {
				t.Errorf("got %q, want a response starting %q", firstLine(out), tc.status)
			}
			if strings.HasPrefix(out, "HTTP/1.1 2") {
				t.Errorf("malformed request was answered %q", firstLine(out))
			}
		})
	}
	if n := hits.Load(); n != 0 {
		t.Errorf("backend received %d requests; malformed requests must not be forwarded", n)
	}
	// Every refused request has an access log line with its reason.
	refused := 0
	for _, l := range tg.accessLines(len(cases) - 2) {
		if r, _ := l["reason"].(string); r == "bad_request" || r == "not_implemented" || r == "http_version_not_supported" {
			refused++
		}
	}
	if refused < len(cases)-2 {
		t.Errorf("only %d refused requests in the access log, want at least %d", refused, len(cases)-2)
	}
	// The gateway still serves well-formed requests afterwards.
	resp, err := http.Get(tg.url("/ok"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mustStatus(t, resp, 200)
}

func firstLine(s string) string {
	if i := strings.Index(s, "\r\n"); i >= 0 {
		return s[:i]
	}
	return s
}

func TestSlowClientHeaderTimeout(t *testing.T) {
	be := echoBackend(t, "a")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, read_header_timeout: 200ms, idle_timeout: 300ms}]
upstreams: [{id: echo, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: echo}]
`, map[string]string{"b": hostport(be)})
	start := time.Now()
	// A client that sends half a request head and stalls is cut off by read_header_timeout.
	out := rawExchange(t, tg.addr, "GET / HTTP/1.1\r\nHost: h\r\nX-Slow:", 5*time.Second)
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("stalled client held the connection for %v", el)
	}
	if !strings.HasPrefix(out, "HTTP/1.1 408") {
		t.Errorf("stalled head answered %q, want a 408", firstLine(out))
	}
	// An idle keep-alive connection is closed after idle_timeout.
	start = time.Now()
	out = rawExchange(t, tg.addr, "GET / HTTP/1.1\r\nHost: h\r\n\r\n", 5*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Errorf("got %q", firstLine(out))
	}
	if el := time.Since(start); el > 3*time.Second {
		t.Errorf("idle connection kept for %v", el)
	}
}
