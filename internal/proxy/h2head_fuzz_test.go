package proxy

import (
	"bufio"
	"context"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// FuzzParseH2Head: parseH2Head is never laxer than the http.ReadRequest it replaced, and
// where it takes a head the two make the same request for the HTTP/2 client: method, URL,
// Host, and the fields, less the connection-specific ones both leave out. Heads with
// Content-Length or Transfer-Encoding are left out of the comparison: ReadRequest read
// them for a body this request does not take (h2Request sets ContentLength from the
// client's request, and the HTTP/2 client writes its own content-length).
func FuzzParseH2Head(f *testing.F) {
	for _, s := range []string{
		"POST /svc/Call HTTP/1.1\r\nHost: api\r\ncontent-type: application/grpc\r\nTE: trailers\r\n\r\n",
		"GET /a%20b?x=1 HTTP/1.1\r\nHost: h\r\nAccept: a\r\naccept: b\r\nConnection: close\r\n\r\n",
		"GET http://o.example/p HTTP/1.1\r\nHost: other\r\nHost: third\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n:authority: x\r\n\r\n",
		"GET / HTTP/1.1\r\n Host: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX: a\nY: b\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nX : a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\n: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nPragma: no-cache\r\n\r\n",
		"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
		"GET * HTTP/1.1\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.0\r\nHost: h\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nHTTP2-Settings: x\r\nKeep-Alive: 1\r\nProxy-Connection: k\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, head string) {
		got, err := parseH2Head(context.Background(), head)
		if err != nil {
			return // stricter than ReadRequest is allowed: writeHead's heads are well formed
		}
		if got.Method == "CONNECT" {
			return // never forwarded (h1 and the HTTP/2 server answer it 501); URL forms differ
		}
		lower := strings.ToLower(head)
		if strings.Contains(lower, "content-length") || strings.Contains(lower, "transfer-encoding") {
			return
		}
		want, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			t.Fatalf("parseH2Head took %q, ReadRequest refused it: %v", head, err)
		}
		for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Te"} {
			want.Header.Del(k)
		}
		if len(got.Header["Pragma"]) > 0 && len(got.Header["Cache-Control"]) == 0 {
			want.Header.Del("Cache-Control") // ReadRequest adds it for "Pragma: no-cache"
		}
		if got.Method != want.Method || got.Host != want.Host || got.URL.String() != want.URL.String() {
			t.Fatalf("%q: method %q host %q URL %q; ReadRequest: %q %q %q", head, got.Method, got.Host, got.URL, want.Method, want.Host, want.URL)
		}
		if len(got.Header) != 0 || len(want.Header) != 0 {
			if !reflect.DeepEqual(got.Header, want.Header) {
				t.Fatalf("%q: header %q; ReadRequest: %q", head, got.Header, want.Header)
			}
		}
		for name, vs := range got.Header {
			if strings.HasPrefix(name, ":") || name == "" {
				t.Fatalf("%q: field %q reaches the HTTP/2 client", head, name)
			}
			for _, v := range vs {
				if strings.ContainsAny(v, "\r\n\x00") {
					t.Fatalf("%q: value %q of %s", head, v, name)
				}
			}
		}
	})
}
