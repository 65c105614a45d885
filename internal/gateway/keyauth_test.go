package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

const keyAuthConfig = `
log: {access_query: true}
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets:
      - address: {{backend}}
consumers:
  - name: alice
    groups: [staff]
    credentials:
      key-auth:
        keys: ["alice-key-0123456789"]
  - name: bob
    credentials:
      key-auth:
        keys: ["bob-key-0123456789ab"]
routes:
  - id: open
    match: {path_prefix: /open}
    upstream: echo
  - id: api
    match: {path_prefix: /api}
    upstream: echo
    plugins:
      - name: key-auth
        config:
          query: api_key
`

// TestKeyAuth: a route with key-auth answers 401 with a challenge without a key or with an
// unknown one, forwards with a known one (in the header or the query) without the key and
// with X-Consumer-Name, and logs the consumer (never the key, even with access_query); a
// route without it is untouched.
func TestKeyAuth(t *testing.T) {
	be := echoBackend(t, "b")
	tg := startGateway(t, keyAuthConfig, map[string]string{"backend": hostport(be)})
	c := newClient()
	cases := []struct {
		name       string
		path       string
		header     map[string]string
		status     int
		reason     string
		consumer   string
		wantURI    string
		challenged bool
	}{
		{name: "no key", path: "/api/x", status: 401, reason: "auth_credentials_missing", challenged: true},
		{name: "unknown key", path: "/api/x", header: map[string]string{"apikey": "nope-nope-nope-nope"}, status: 401, reason: "auth_credentials_invalid", challenged: true},
		{name: "header key", path: "/api/x", header: map[string]string{"apikey": "alice-key-0123456789"}, status: 200, consumer: "alice", wantURI: "/api/x"},
		{name: "query key", path: "/api/x?a=1&api_key=bob-key-0123456789ab&b=2", status: 200, consumer: "bob", wantURI: "/api/x?a=1&b=2"},
		{name: "spoofed consumer header", path: "/api/x", header: map[string]string{"apikey": "bob-key-0123456789ab", "X-Consumer-Name": "alice"}, status: 200, consumer: "bob", wantURI: "/api/x"},
		{name: "route without plugin", path: "/open", status: 200, wantURI: "/open"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tg.url(tc.path), nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, info := getEcho(t, c, req)
			wantAnswer(t, resp, tc.status, tc.reason)
			if got := resp.Header.Get("WWW-Authenticate"); (got != "") != tc.challenged {
				t.Errorf("WWW-Authenticate = %q, want present: %v", got, tc.challenged)
			}
			if tc.status != 200 {
				return
			}
			if info.URI != tc.wantURI {
				t.Errorf("upstream URI = %q, want %q", info.URI, tc.wantURI)
			}
			if _, ok := info.Header["Apikey"]; ok {
				t.Errorf("the key was forwarded: %v", info.Header)
			}
			if got := strings.Join(info.Header["X-Consumer-Name"], ","); got != tc.consumer {
				t.Errorf("X-Consumer-Name = %q, want %q", got, tc.consumer)
			}
		})
	}
	lines := tg.accessLines(len(cases))
	if lines[2]["consumer"] != "alice" || lines[0]["reason"] != "auth_credentials_missing" || lines[0]["plugin"] != "key-auth" {
		t.Errorf("access log lines: %v / %v", lines[0], lines[2])
	}
	// access_query logs the query as forwarded: without the key.
	if lines[3]["query"] != "a=1&b=2" {
		t.Errorf("access log query = %v, want the key removed", lines[3]["query"])
	}
	for _, l := range lines {
		if s := tg.access.String(); strings.Contains(s, "alice-key") || strings.Contains(s, "bob-key") {
			t.Fatalf("a key is in the access log: %v", l)
		}
	}
}

// TestKeyAuthRefusesBodyUnread: a request with a body (and Expect: 100-continue) refused by
// key-auth gets its 401 at once, without 100 Continue and without the body being read.
func TestKeyAuthRefusesBodyUnread(t *testing.T) {
	be := echoBackend(t, "b")
	tg := startGateway(t, keyAuthConfig, map[string]string{"backend": hostport(be)})
	out := rawExchange(t, tg.addr, "POST /api/upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10000000\r\nExpect: 100-continue\r\n\r\n", 5*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.1 401 ") || strings.Contains(out, "100 Continue") || !strings.Contains(out, "auth_credentials_missing") {
		t.Fatalf("got %q", out)
	}
}
