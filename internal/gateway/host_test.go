package gateway

import (
	"testing"
	"time"
)

// TestHTTP10WithoutHost: an HTTP/1.0 request may come without Host; the upstream gets the
// host the route's rule gives for a request without one (the target's, or the fixed value),
// and no X-Forwarded-Host, instead of empty fields.
func TestHTTP10WithoutHost(t *testing.T) {
	const request = "GET /x HTTP/1.0\r\nX-Request-Id: nh-1\r\n\r\n"
	const reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	after := "X-Forwarded-For: 127.0.0.1\r\nX-Forwarded-Proto: http\r\nX-Request-Id: nh-1\r\n\r\n"
	for _, tc := range []struct{ name, route, host string }{
		{"client host rule", "", ""},
		{"target host rule", "rewrite: {host: target}", ""},
		{"fixed host rule", "rewrite: {host: fixed, host_value: api.internal}", "api.internal"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be, got := recordingBackend(t, reply)
			tg := edgeGateway(t, be, "", tc.route)
			host := tc.host
			if host == "" {
				host = be
			}
			out := rawExchange(t, tg.addr, request, 5*time.Second)
			wantBytes(t, "backend read", received(t, got), "GET /x HTTP/1.1\r\nHost: "+host+"\r\n"+after)
			wantBytes(t, "client got", out, "HTTP/1.1 200 OK\r\nX-Request-Id: nh-1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
		})
	}
}
