package gateway

import (
	"bufio"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2/hpack"
)

// TestH2ControlDataChecked: an HTTP/2 request's :method, :path and :authority (or Host)
// become the request-line and Host field an HTTP/1.1 upstream reads, so they must be what
// an HTTP/1.1 client could have sent; the others are answered 400 bad_request, as a
// malformed HTTP/1.1 request-line is, and never reach the backend. Passed on, an SP in
// :method or :path splits the upstream request-line ("GET /admin HTTP/1.1 /public
// HTTP/1.1": the gateway routed /public), and an absolute URI in :path names a second host,
// which the backend must prefer to Host (RFC 9112 §3.2.2) while the gateway routed on
// :authority.
func TestH2ControlDataChecked(t *testing.T) {
	var mu sync.Mutex
	var got []string // request-line and Host of each request the backend read
	be := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			var head []string
			for {
				l, err := br.ReadString('\n')
				if err != nil {
					return
				}
				if l == "\r\n" {
					break
				}
				if len(head) < 2 {
					head = append(head, strings.TrimRight(l, "\r\n"))
				}
			}
			mu.Lock()
			got = append(got, strings.Join(head, " | "))
			mu.Unlock()
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
		}
	})
	s := startH2(t, false, be, "")
	f := func(n, v string) hpack.HeaderField { return hpack.HeaderField{Name: n, Value: v} }
	cases := []struct {
		name                    string
		method, path, authority string
		host                    string // a Host field ("": none)
		want                    string // the status; for 200, what the backend read
		backend                 string
	}{
		{name: "method with SP", method: "GET /admin HTTP/1.1", path: "/public", authority: "site.test", want: "400"},
		{name: "method not a token", method: "GE(T", path: "/public", authority: "site.test", want: "400"},
		{name: "path with SP", method: "GET", path: "/public /admin", authority: "site.test", want: "400"},
		{name: "path with HTAB", method: "GET", path: "/a\tb", authority: "site.test", want: "400"},
		{name: "path with fragment", method: "GET", path: "/a#b", authority: "site.test", want: "400"},
		{name: "absolute URI in path", method: "GET", path: "http://other.test/admin", authority: "site.test", want: "400"},
		{name: "path without slash", method: "GET", path: "admin", authority: "site.test", want: "400"},
		{name: "asterisk without OPTIONS", method: "GET", path: "*", authority: "site.test", want: "400"},
		{name: "authority with SP", method: "GET", path: "/x", authority: "a b", want: "400"},
		{name: "authority with userinfo", method: "GET", path: "/x", authority: "user@site.test", want: "400"},
		{name: "host field with slash", method: "GET", path: "/x", host: "a/b", want: "400"},
		// neither :authority nor host: an HTTP/1.1 request without Host is a 400 too (the
		// upstream would get the target's address as Host, and routes by host see none)
		{name: "no authority and no host", method: "GET", path: "/x", want: "400"},
		{name: "origin form", method: "GET", path: "/x?q=1", authority: "site.test:8443", want: "200",
			backend: "GET /x?q=1 HTTP/1.1 | Host: site.test:8443"},
		{name: "asterisk with OPTIONS", method: "OPTIONS", path: "*", authority: "[::1]:80", want: "200",
			backend: "OPTIONS * HTTP/1.1 | Host: [::1]:80"},
		{name: "host field", method: "GET", path: "/h", host: "site.test", want: "200",
			backend: "GET /h HTTP/1.1 | Host: site.test"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mu.Lock()
			got = nil
			mu.Unlock()
			r := dialRawH2(t, s)
			r.readSettingsAndAck()
			r.buf.Reset()
			fields := []hpack.HeaderField{f(":method", tc.method), f(":scheme", "http"), f(":path", tc.path)}
			if tc.authority != "" {
				fields = append(fields, f(":authority", tc.authority))
			}
			if tc.host != "" {
				fields = append(fields, f("host", tc.host))
			}
			for _, hf := range fields {
				r.enc.WriteField(hf)
			}
			r.headers(1, true, r.buf.Bytes())
			res := r.readUntil(5*time.Second, func(res h2Result) bool { return res.ended[1] })
			if res.status[1] != tc.want {
				t.Fatalf("status %q, want %s (resets %v)", res.status[1], tc.want, res.resets)
			}
			l := s.accessLines(i + 1)[i]
			mu.Lock()
			defer mu.Unlock()
			if tc.want == "400" {
				if l["reason"] != "bad_request" || l["http_version"] != "HTTP/2" || len(got) != 0 {
					t.Fatalf("access line %v; the backend read %q", l, got)
				}
				return
			}
			if len(got) != 1 || got[0] != tc.backend {
				t.Fatalf("the backend read %q, want %q", got, tc.backend)
			}
		})
	}
}
