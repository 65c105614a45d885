package gateway

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// trailerBackend is a Go backend speaking HTTP/1.1 and h2c that reads the request body and
// answers with what arrived: X-Got-Sum is the X-Req-Sum trailer, X-Got-Auth the
// Authorization trailer (which no trailer section may carry), X-Got-Len the body's length.
func trailerBackend(t *testing.T) string {
	t.Helper()
	be := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Got-Sum", r.Trailer.Get("X-Req-Sum"))
		w.Header().Set("X-Got-Auth", r.Trailer.Get("Authorization"))
		w.Header().Set("X-Got-Len", fmt.Sprint(n))
		w.Header().Set("X-Got-Proto", r.Proto)
	}))
	be.Config.Protocols = new(http.Protocols)
	be.Config.Protocols.SetHTTP1(true)
	be.Config.Protocols.SetUnencryptedHTTP2(true)
	be.Start()
	t.Cleanup(be.Close)
	return hostport(be)
}

// TestRequestTrailersToUpstream: a request's trailers reach the backend, HTTP/1.1 or h2c,
// whether the client sends them at the end of a chunked HTTP/1.1 body or in an HTTP/2
// trailer section, whether the body was held whole before the attempt or streamed past the
// held prefix (64 KiB), and whether or not the client declared them in a Trailer field (a
// Go HTTP/2 server keeps only declared trailers). A field no trailer section may carry
// (Authorization) is not forwarded. Before issue #16's leftover fix an h2c upstream got no
// request trailers at all.
func TestRequestTrailersToUpstream(t *testing.T) {
	backend := trailerBackend(t)
	big := strings.Repeat("x", 100<<10) // past the held prefix: the body streams
	for _, up := range []struct{ name, protocol, proto string }{
		{"http1 upstream", "http1", "HTTP/1.1"}, {"h2c upstream", "h2c", "HTTP/2.0"},
	} {
		tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
    protocols: [http1, h2c]
upstreams:
  - id: be
    targets: [{address: "{{backend}}"}]
    protocol: `+up.protocol+`
routes:
  - id: all
    upstream: be
`, map[string]string{"backend": backend})
		for _, tc := range []struct {
			name    string
			body    string
			declare bool // the client names its trailers in a Trailer field
			h2      bool // an h2c client (Go's, which always declares them)
		}{
			{name: "h1 held declared", body: "abcd", declare: true},
			{name: "h1 held undeclared", body: "abcd"},
			{name: "h1 streamed declared", body: big, declare: true},
			{name: "h2 held", body: "abcd", h2: true},
			{name: "h2 streamed", body: big, h2: true},
		} {
			t.Run(up.name+"/"+tc.name, func(t *testing.T) {
				var h http.Header
				if tc.h2 {
					h = h2TrailerRequest(t, tg.url("/"), tc.body)
				} else {
					h = h1TrailerRequest(t, tg.addr, tc.body, tc.declare)
				}
				if got := h.Get("X-Got-Proto"); got != up.proto {
					t.Fatalf("backend spoke %q; want %s", got, up.proto)
				}
				if got := h.Get("X-Got-Sum"); got != "q7" {
					t.Errorf("backend saw trailer X-Req-Sum %q; want q7", got)
				}
				if got := h.Get("X-Got-Auth"); got != "" {
					t.Errorf("backend saw trailer Authorization %q; it must not be forwarded", got)
				}
				if got := h.Get("X-Got-Len"); got != fmt.Sprint(len(tc.body)) {
					t.Errorf("backend read %s body bytes; want %d", got, len(tc.body))
				}
			})
		}
	}
}

// h1TrailerRequest POSTs body chunked over HTTP/1.1 with trailers X-Req-Sum and
// Authorization, and returns the response's header.
func h1TrailerRequest(t *testing.T, addr, body string, declare bool) http.Header {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	head := "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
	if declare {
		head += "Trailer: X-Req-Sum, Authorization\r\n"
	}
	raw := head + "\r\n" + fmt.Sprintf("%x\r\n%s\r\n", len(body), body) + "0\r\nX-Req-Sum: q7\r\nAuthorization: Bearer t\r\n\r\n"
	go io.WriteString(conn, raw) // a large body is read while it is written
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("status %d (%s); want 200", resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
	}
	return resp.Header
}

// h2TrailerRequest POSTs body of unknown length over h2c with trailers X-Req-Sum and
// Authorization, and returns the response's header.
func h2TrailerRequest(t *testing.T, url, body string) http.Header {
	t.Helper()
	req, _ := http.NewRequest("POST", url, io.MultiReader(strings.NewReader(body))) // no length known
	req.Trailer = http.Header{"X-Req-Sum": nil, "Authorization": nil}
	req.Body = &trailerSetter{ReadCloser: req.Body, set: func() {
		req.Trailer.Set("X-Req-Sum", "q7")
		req.Trailer.Set("Authorization", "Bearer t")
	}}
	c := h2cClient()
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.ProtoMajor != 2 {
		t.Fatalf("%s status %d (%s); want HTTP/2 200", resp.Proto, resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
	}
	return resp.Header
}

// trailerSetter runs set when its body ends, as a client fills its trailers.
type trailerSetter struct {
	io.ReadCloser
	set func()
}

func (s *trailerSetter) Read(p []byte) (int, error) {
	n, err := s.ReadCloser.Read(p)
	if err == io.EOF && s.set != nil {
		s.set()
		s.set = nil
	}
	return n, err
}
