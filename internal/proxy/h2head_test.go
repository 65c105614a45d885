package proxy

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"testing"
)

// TestParseH2Head: the head writeHead renders becomes the HTTP/2 client's request as
// http.ReadRequest made it (canonical names, repeated fields in order, Host as req.Host,
// connection-specific fields left out), and a head with an invalid line is refused.
func TestParseH2Head(t *testing.T) {
	type key struct{}
	ctx := context.WithValue(context.Background(), key{}, 1)
	for _, tc := range []struct {
		name     string
		head     string
		method   string
		host     string
		path     string
		query    string
		header   http.Header
		wantFail bool
	}{
		{
			name:   "gRPC call",
			head:   "POST /grpc.testing.TestService/UnaryCall HTTP/1.1\r\nHost: api.example\r\ncontent-type: application/grpc\r\nuser-agent: grpc-go/1.85.0\r\ngrpc-accept-encoding: gzip\r\nX-Forwarded-For: 127.0.0.1\r\nX-Request-Id: abc\r\nTransfer-Encoding: chunked\r\nTE: trailers\r\n\r\n",
			method: "POST", host: "api.example", path: "/grpc.testing.TestService/UnaryCall",
			header: http.Header{
				"Content-Type":         {"application/grpc"},
				"User-Agent":           {"grpc-go/1.85.0"},
				"Grpc-Accept-Encoding": {"gzip"},
				"X-Forwarded-For":      {"127.0.0.1"},
				"X-Request-Id":         {"abc"},
			},
		},
		{
			name:   "repeated fields, trimmed values, query",
			head:   "GET /a%20b?x=1&y=2 HTTP/1.1\r\nHost: h\r\nAccept: a\r\nx-multi:  1 \r\naccept: b\r\nX-Multi:\t2\r\nConnection: close\r\nKeep-Alive: 5\r\nUpgrade: x\r\nProxy-Connection: y\r\n\r\n",
			method: "GET", host: "h", path: "/a b", query: "x=1&y=2",
			header: http.Header{"Accept": {"a", "b"}, "X-Multi": {"1", "2"}},
		},
		{
			name:   "absolute form: its host is the request's",
			head:   "GET http://origin.example/p HTTP/1.1\r\nHost: other\r\n\r\n",
			method: "GET", host: "origin.example", path: "/p", header: http.Header{},
		},
		{name: "field name with a space", head: "GET / HTTP/1.1\r\nHost: h\r\nBad Name: v\r\n\r\n", wantFail: true},
		{name: "two Host fields", head: "GET / HTTP/1.1\r\nHost: h\r\nX: 1\r\nhost: evil\r\n\r\n", wantFail: true},
		{name: "bare LF starting a value", head: "GET / HTTP/1.1\r\nHost: h\r\nX:\nEvil: 1\r\n\r\n", wantFail: true},
		{name: "bare CR ending a value", head: "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\r\n\r\n", wantFail: true},
		{name: "field without colon", head: "GET / HTTP/1.1\r\nHost: h\r\nnocolon\r\n\r\n", wantFail: true},
		{name: "control byte in a value", head: "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", wantFail: true},
		{name: "no end of head", head: "GET / HTTP/1.1\r\nHost: h\r\n", wantFail: true},
		{name: "bad request line", head: "GET /\r\n\r\n", wantFail: true},
		{name: "bad target", head: "GET :x HTTP/1.1\r\n\r\n", wantFail: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, err := parseH2Head(ctx, tc.head)
			if tc.wantFail {
				if !errors.Is(err, errH2Head) {
					t.Fatalf("err = %v, want errH2Head", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if req.Method != tc.method || req.Host != tc.host || req.URL.Path != tc.path || req.URL.RawQuery != tc.query {
				t.Errorf("method %q host %q path %q query %q, want %q %q %q %q", req.Method, req.Host, req.URL.Path, req.URL.RawQuery, tc.method, tc.host, tc.path, tc.query)
			}
			if !reflect.DeepEqual(req.Header, tc.header) {
				t.Errorf("header %v, want %v", req.Header, tc.header)
			}
			if req.Context().Value(key{}) != 1 {
				t.Error("the request does not carry the context given")
			}
			// An Add to one field must not write into another's value.
			for k := range tc.header {
				req.Header.Add(k, "z")
			}
			for k, vs := range tc.header {
				if got := req.Header[k][:len(vs)]; !reflect.DeepEqual(got, vs) {
					t.Errorf("%s after Adds: %v, want %v first", k, got, vs)
				}
			}
		})
	}
}
