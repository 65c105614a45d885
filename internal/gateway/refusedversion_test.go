package gateway

import (
	"strings"
	"testing"
	"time"
)

// TestRefusedRequestHTTPVersion: a request the HTTP/1 server refuses before routing gets
// the http_version it sent in its access log line when its request-line was parsed, and
// none when the head was refused before its version was read (a head too large or too
// slow, a version other than HTTP/1.0 and 1.1, an HTTP/2 preface on a listener without
// h2c). Before, those said "HTTP/1.0" (the parser's default), whatever the client spoke.
func TestRefusedRequestHTTPVersion(t *testing.T) {
	tg := echoGateway(t, "read_header_timeout: 300ms")
	cases := []struct {
		name, raw string
		status    string
		version   any // nil: the field is left out
	}{
		{"version 1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", "505", nil},
		{"h2 preface", "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "505", nil},
		{"head too large", "GET / HTTP/1.1\r\nHost: a\r\nX: " + strings.Repeat("a", 70000) + "\r\n\r\n", "431", nil},
		{"request-line too long", "GET /" + strings.Repeat("a", 70000) + " HTTP/1.1\r\nHost: a\r\n\r\n", "414", nil},
		{"head too slow", "GET / HTTP/1.1\r\nHost: a\r\n", "408", nil},
		{"bad field 1.1", "GET / HTTP/1.1\r\nHost: a\r\nBad Name: x\r\n\r\n", "400", "HTTP/1.1"},
		{"bad field 1.0", "GET / HTTP/1.0\r\nBad Name: x\r\n\r\n", "400", "HTTP/1.0"},
		{"transfer coding", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", "501", "HTTP/1.1"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if out := rawExchange(t, tg.addr, tc.raw, 3*time.Second); !strings.HasPrefix(out, "HTTP/1.1 "+tc.status+" ") {
				t.Fatalf("answer %.40q, want %s", out, tc.status)
			}
			l := tg.accessLines(i + 1)[i]
			if v, ok := l["http_version"]; v != tc.version || ok != (tc.version != nil) {
				t.Errorf("http_version %v (present: %v), want %v; line %v", v, ok, tc.version, l)
			}
		})
	}
}
