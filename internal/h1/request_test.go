package h1

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func readRequestString(raw string, lim Limits) (*Request, error) {
	var r Request
	err := ReadRequest(bufio.NewReader(strings.NewReader(raw)), &r, lim)
	return &r, err
}

func statusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

func TestReadRequestErrors(t *testing.T) {
	const host = "Host: example.com\r\n"
	tests := []struct {
		name   string
		raw    string
		lim    Limits
		status int // 0: a non-*Error error is expected
		err    error
	}{
		// Request-line.
		{name: "lower-case version", raw: "GET / http/1.1\r\n" + host + "\r\n", status: 400},
		{name: "HTTP/2.0", raw: "GET / HTTP/2.0\r\n" + host + "\r\n", status: 505},
		{name: "HTTP/1.2", raw: "GET / HTTP/1.2\r\n" + host + "\r\n", status: 505},
		{name: "h2 preface", raw: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", status: 505},
		{name: "HTTP/0.9 style", raw: "GET /\r\n\r\n", status: 400},
		{name: "version trailing space", raw: "GET / HTTP/1.1 \r\n" + host + "\r\n", status: 400},
		{name: "version garbage", raw: "GET / HTTP/1.1x\r\n" + host + "\r\n", status: 400},
		{name: "two-digit version", raw: "GET / HTTP/10.1\r\n" + host + "\r\n", status: 400},
		{name: "double space", raw: "GET  / HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "leading space", raw: " GET / HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "tab separator", raw: "GET\t/ HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "method not token", raw: "G(T / HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "empty method", raw: " / HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "bare LF request-line", raw: "GET / HTTP/1.1\n" + host + "\r\n", status: 400},
		{name: "bare CR in request-line", raw: "GET /\r HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "bare LF leading line", raw: "\nGET / HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "too many leading CRLF", raw: strings.Repeat("\r\n", 5) + "GET / HTTP/1.1\r\n" + host + "\r\n", status: 400},
		// Request-target.
		{name: "target with space", raw: "GET /a b HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "target with fragment", raw: "GET /a#b HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "target with DEL", raw: "GET /a\x7f HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "target non-ASCII", raw: "GET /caf\xc3\xa9 HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "target with NUL", raw: "GET /\x00 HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "relative target", raw: "GET a/b HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "asterisk with GET", raw: "GET * HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "other scheme", raw: "GET ftp://example.com/ HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "absolute empty authority", raw: "GET http:///a HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "absolute userinfo", raw: "GET http://u:p@example.com/ HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "absolute bad port", raw: "GET http://example.com:99999/ HTTP/1.1\r\n" + host + "\r\n", status: 400},
		{name: "CONNECT authority-form", raw: "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", status: 501},
		// Field lines.
		{name: "obs-fold", raw: "GET / HTTP/1.1\r\n" + host + "X: a\r\n b\r\n\r\n", status: 400},
		{name: "obs-fold tab", raw: "GET / HTTP/1.1\r\n" + host + "X: a\r\n\tb\r\n\r\n", status: 400},
		{name: "space before colon", raw: "GET / HTTP/1.1\r\n" + host + "X : a\r\n\r\n", status: 400},
		{name: "tab before colon", raw: "GET / HTTP/1.1\r\n" + host + "X\t: a\r\n\r\n", status: 400},
		{name: "empty name", raw: "GET / HTTP/1.1\r\n" + host + ": a\r\n\r\n", status: 400},
		{name: "no colon", raw: "GET / HTTP/1.1\r\n" + host + "X a\r\n\r\n", status: 400},
		{name: "NUL in value", raw: "GET / HTTP/1.1\r\n" + host + "X: a\x00b\r\n\r\n", status: 400},
		{name: "CTL in value", raw: "GET / HTTP/1.1\r\n" + host + "X: a\x01b\r\n\r\n", status: 400},
		{name: "DEL in value", raw: "GET / HTTP/1.1\r\n" + host + "X: a\x7fb\r\n\r\n", status: 400},
		{name: "bare CR in value", raw: "GET / HTTP/1.1\r\n" + host + "X: a\rb\r\n\r\n", status: 400},
		{name: "bare LF field line", raw: "GET / HTTP/1.1\r\n" + host + "X: a\n\r\n", status: 400},
		{name: "bare LF end of head", raw: "GET / HTTP/1.1\r\n" + host + "\n", status: 400},
		{name: "CR CR LF end of head", raw: "GET / HTTP/1.1\r\n" + host + "\r\r\n\r\n", status: 400},
		{name: "non-token name", raw: "GET / HTTP/1.1\r\n" + host + "X(y): a\r\n\r\n", status: 400},
		// Content-Length.
		{name: "CL sign", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: +5\r\n\r\n", status: 400},
		{name: "CL negative", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: -1\r\n\r\n", status: 400},
		{name: "CL inner space", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 1 2\r\n\r\n", status: 400},
		{name: "CL list", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 5, 5\r\n\r\n", status: 400},
		{name: "CL empty", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length:\r\n\r\n", status: 400},
		{name: "CL hex", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 0x5\r\n\r\n", status: 400},
		{name: "CL overflow", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 9223372036854775808\r\n\r\n", status: 400},
		{name: "CL twice equal", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nContent-Length: 5\r\n\r\n", status: 400},
		{name: "CL twice differing", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\ncontent-length: 6\r\n\r\n", status: 400},
		// Transfer-Encoding.
		{name: "TE and CL", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", status: 400},
		{name: "CL and TE", raw: "POST / HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "TE in HTTP/1.0", raw: "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "TE gzip chunked", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: gzip, chunked\r\n\r\n", status: 501},
		{name: "TE chunked gzip", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, gzip\r\n\r\n", status: 501},
		{name: "TE identity", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: identity\r\n\r\n", status: 501},
		{name: "TE chunked twice", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked, chunked\r\n\r\n", status: 400},
		{name: "TE two fields", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", status: 400},
		{name: "TE empty", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding:\r\n\r\n", status: 400},
		{name: "TE trailing comma", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked,\r\n\r\n", status: 400},
		{name: "TE with params", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunked;q=1\r\n\r\n", status: 400},
		{name: "TE vertical tab", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: \x0bchunked\r\n\r\n", status: 400},
		{name: "TE chunkedx", raw: "POST / HTTP/1.1\r\n" + host + "Transfer-Encoding: chunkedx\r\n\r\n", status: 501},
		// Host.
		{name: "missing Host", raw: "GET / HTTP/1.1\r\n\r\n", status: 400},
		{name: "two Host fields", raw: "GET / HTTP/1.1\r\n" + host + host + "\r\n", status: 400},
		{name: "empty Host", raw: "GET / HTTP/1.1\r\nHost:\r\n\r\n", status: 400},
		{name: "Host with path", raw: "GET / HTTP/1.1\r\nHost: a.com/x\r\n\r\n", status: 400},
		{name: "Host with userinfo", raw: "GET / HTTP/1.1\r\nHost: u@a.com\r\n\r\n", status: 400},
		{name: "Host with space", raw: "GET / HTTP/1.1\r\nHost: a .com\r\n\r\n", status: 400},
		{name: "Host port letters", raw: "GET / HTTP/1.1\r\nHost: a.com:8x\r\n\r\n", status: 400},
		{name: "Host empty port", raw: "GET / HTTP/1.1\r\nHost: a.com:\r\n\r\n", status: 400},
		{name: "Host only port", raw: "GET / HTTP/1.1\r\nHost: :80\r\n\r\n", status: 400},
		{name: "Host bad IPv6", raw: "GET / HTTP/1.1\r\nHost: [::g]\r\n\r\n", status: 400},
		{name: "Host IPv6 zone", raw: "GET / HTTP/1.1\r\nHost: [fe80::1%eth0]\r\n\r\n", status: 400},
		{name: "Host unclosed bracket", raw: "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", status: 400},
		{name: "Host bad pct", raw: "GET / HTTP/1.1\r\nHost: a%zz.com\r\n\r\n", status: 400},
		{name: "absolute-form without Host", raw: "GET http://a.com/ HTTP/1.1\r\n\r\n", status: 400},
		// Limits.
		{name: "request-line too long", raw: "GET /" + strings.Repeat("a", 200) + " HTTP/1.1\r\n" + host + "\r\n", lim: Limits{MaxHeaderBytes: 100}, status: 414},
		{name: "head too long", raw: "GET / HTTP/1.1\r\n" + host + "X: " + strings.Repeat("a", 200) + "\r\n\r\n", lim: Limits{MaxHeaderBytes: 100}, status: 431},
		{name: "too many fields", raw: "GET / HTTP/1.1\r\n" + host + strings.Repeat("X: a\r\n", 3) + "\r\n", lim: Limits{MaxHeaders: 3}, status: 431},
		{name: "default field limit", raw: "GET / HTTP/1.1\r\n" + host + strings.Repeat("X: a\r\n", 100) + "\r\n", status: 431},
		// Connection ends.
		{name: "empty input", raw: "", err: io.EOF},
		{name: "only empty lines", raw: "\r\n\r\n", err: io.EOF},
		{name: "EOF in request-line", raw: "GET / HT", err: io.ErrUnexpectedEOF},
		{name: "EOF in fields", raw: "GET / HTTP/1.1\r\nHost: a", err: io.ErrUnexpectedEOF},
		{name: "EOF before empty line", raw: "GET / HTTP/1.1\r\n" + host, err: io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := readRequestString(tc.raw, tc.lim)
			if err == nil {
				t.Fatal("ReadRequest succeeded, want an error")
			}
			if got := statusOf(err); got != tc.status {
				t.Errorf("status = %d (%v), want %d", got, err, tc.status)
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("err = %v, want %v", err, tc.err)
			}
		})
	}
}

func TestReadRequest(t *testing.T) {
	tests := []struct {
		name     string
		raw      string
		lim      Limits
		method   string
		path     string
		query    string
		hasQuery bool
		host     string
		minor    int
		length   int64
		chunked  bool
		close    bool
		expect   bool
		fields   int
	}{
		{name: "simple GET", raw: "GET /a/b HTTP/1.1\r\nHost: example.com\r\n\r\n",
			method: "GET", path: "/a/b", host: "example.com", minor: 1, fields: 1},
		{name: "query", raw: "GET /s?q=1&r=%20 HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
			method: "GET", path: "/s", query: "q=1&r=%20", hasQuery: true, host: "example.com:8080", minor: 1, fields: 1},
		{name: "empty query", raw: "GET /s? HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "GET", path: "/s", hasQuery: true, host: "h", minor: 1, fields: 1},
		{name: "absolute-form", raw: "GET http://Origin.example:81/p?x HTTP/1.1\r\nHost: other\r\n\r\n",
			method: "GET", path: "/p", query: "x", hasQuery: true, host: "Origin.example:81", minor: 1, fields: 1},
		{name: "absolute-form https upper scheme no path", raw: "GET HTTPS://a.example HTTP/1.1\r\nHost: a.example\r\n\r\n",
			method: "GET", path: "/", host: "a.example", minor: 1, fields: 1},
		{name: "absolute-form query no path", raw: "GET http://a.example?q HTTP/1.1\r\nHost: a.example\r\n\r\n",
			method: "GET", path: "/", query: "q", hasQuery: true, host: "a.example", minor: 1, fields: 1},
		{name: "absolute-form IPv6", raw: "GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
			method: "GET", path: "/", host: "[::1]:8080", minor: 1, fields: 1},
		{name: "asterisk OPTIONS", raw: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "OPTIONS", path: "*", host: "h", minor: 1, fields: 1},
		{name: "HTTP/1.0 no Host", raw: "GET / HTTP/1.0\r\n\r\n",
			method: "GET", path: "/", minor: 0, close: true},
		{name: "HTTP/1.0 keep-alive", raw: "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n",
			method: "GET", path: "/", minor: 0, fields: 1},
		{name: "HTTP/1.0 ignores Expect", raw: "POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
			method: "POST", path: "/", minor: 0, length: 3, close: true, fields: 2},
		{name: "Connection close among tokens", raw: "GET / HTTP/1.1\r\nHost: h\r\nConnection: foo, CLOSE\r\n\r\n",
			method: "GET", path: "/", host: "h", minor: 1, close: true, fields: 2},
		{name: "Connection close in second field", raw: "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\nConnection: close\r\n\r\n",
			method: "GET", path: "/", host: "h", minor: 1, close: true, fields: 3},
		{name: "Expect 100-continue", raw: "PUT /u HTTP/1.1\r\nHost: h\r\nExpect: 100-Continue\r\nContent-Length: 10\r\n\r\n",
			method: "PUT", path: "/u", host: "h", minor: 1, length: 10, expect: true, fields: 3},
		{name: "chunked", raw: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked \r\n\r\n",
			method: "POST", path: "/", host: "h", minor: 1, length: -1, chunked: true, fields: 2},
		{name: "leading empty lines", raw: "\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n",
			method: "GET", path: "/", host: "h", minor: 1, fields: 1},
		{name: "OWS and obs-text value", raw: "GET / HTTP/1.1\r\nHost:h\r\nX-A: \t caf\xc3\xa9 \t\r\nX-B:\r\n\r\n",
			method: "GET", path: "/", host: "h", minor: 1, fields: 3},
		{name: "extension method", raw: "PURGE /x HTTP/1.1\r\nHost: 10.0.0.1\r\n\r\n",
			method: "PURGE", path: "/x", host: "10.0.0.1", minor: 1, fields: 1},
		{name: "many fields at the limit", raw: "GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X-Many: v\r\n", 99) + "\r\n",
			method: "GET", path: "/", host: "h", minor: 1, fields: 100},
		{name: "head exactly at byte limit", raw: "GET / HTTP/1.1\r\nHost: h\r\n\r\n", lim: Limits{MaxHeaderBytes: 27},
			method: "GET", path: "/", host: "h", minor: 1, fields: 1},
		{name: "line longer than bufio buffer", raw: "GET /" + strings.Repeat("p", 5000) + " HTTP/1.1\r\nHost: h\r\nX: " + strings.Repeat("v", 6000) + "\r\n\r\n",
			method: "GET", path: "/" + strings.Repeat("p", 5000), host: "h", minor: 1, fields: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := readRequestString(tc.raw, tc.lim)
			if err != nil {
				t.Fatalf("ReadRequest: %v", err)
			}
			if string(r.Method) != tc.method || string(r.Path) != tc.path || string(r.Host) != tc.host {
				t.Errorf("method, path, host = %q, %q, %q; want %q, %q, %q", r.Method, r.Path, r.Host, tc.method, tc.path, tc.host)
			}
			if string(r.Query) != tc.query || (r.Query != nil) != tc.hasQuery {
				t.Errorf("query = %q (nil %v), want %q (present %v)", r.Query, r.Query == nil, tc.query, tc.hasQuery)
			}
			if r.Minor != tc.minor || r.ContentLength != tc.length || r.Chunked != tc.chunked {
				t.Errorf("minor, length, chunked = %d, %d, %v; want %d, %d, %v", r.Minor, r.ContentLength, r.Chunked, tc.minor, tc.length, tc.chunked)
			}
			if r.Close != tc.close || r.Expect100 != tc.expect {
				t.Errorf("close, expect = %v, %v; want %v, %v", r.Close, r.Expect100, tc.close, tc.expect)
			}
			if len(r.Header.Fields) != tc.fields {
				t.Errorf("fields = %d, want %d", len(r.Header.Fields), tc.fields)
			}
		})
	}
}

func TestReadRequestTargetAndFields(t *testing.T) {
	r, err := readRequestString("GET http://a.example/x?y HTTP/1.1\r\nHost: a.example\r\nX-Ow:  v w \r\n\r\n", Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if string(r.Target) != "http://a.example/x?y" {
		t.Errorf("Target = %q", r.Target)
	}
	if v, _ := r.Header.Get("x-ow"); string(v) != "v w" {
		t.Errorf("X-Ow = %q, want OWS trimmed %q", v, "v w")
	}
	if string(r.Header.Fields[1].Name) != "X-Ow" {
		t.Errorf("name case not kept: %q", r.Header.Fields[1].Name)
	}
}

// TestReadRequestPipelined reads several requests and their bodies from one reader, through
// a one-byte-at-a-time source so that every read boundary is exercised.
func TestReadRequestPipelined(t *testing.T) {
	raw := "GET /1 HTTP/1.1\r\nHost: h\r\n\r\n" +
		"POST /2 HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhello" +
		"POST /3 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3;x=1\r\nabc\r\n0\r\nT: v\r\n\r\n" +
		"\r\nGET /4 HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
	want := []struct{ path, body string }{{"/1", ""}, {"/2", "hello"}, {"/3", "abc"}, {"/4", ""}}
	br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(raw)), 16)
	var r Request
	var body BodyReader
	for i, w := range want {
		if err := ReadRequest(br, &r, Limits{}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		if string(r.Path) != w.path {
			t.Errorf("request %d: path %q, want %q", i, r.Path, w.path)
		}
		body.Reset(br, r.ContentLength, r.Chunked, 0)
		got, err := io.ReadAll(&body)
		if err != nil || string(got) != w.body {
			t.Errorf("request %d: body %q, %v; want %q", i, got, err, w.body)
		}
	}
	if !r.Close {
		t.Error("last request: Close = false")
	}
	if err := ReadRequest(br, &r, Limits{}); err != io.EOF {
		t.Errorf("after last request: %v, want io.EOF", err)
	}
}

// TestReadRequestReuseKeepsNoStaleData checks that a reused Request does not keep fields
// of the previous one and that its slices do not alias the bufio buffer.
func TestReadRequestReuseKeepsNoStaleData(t *testing.T) {
	raw := "GET /first HTTP/1.1\r\nHost: a\r\nX-Only-First: 1\r\n\r\nGET /second HTTP/1.1\r\nHost: b\r\n\r\n"
	br := bufio.NewReaderSize(strings.NewReader(raw), 16)
	var r Request
	if err := ReadRequest(br, &r, Limits{}); err != nil {
		t.Fatal(err)
	}
	path := r.Path
	if _, err := br.Peek(16); err != nil { // overwrite the bufio buffer
		t.Fatal(err)
	}
	if string(path) != "/first" {
		t.Errorf("path changed under later reads: %q", path)
	}
	if err := ReadRequest(br, &r, Limits{}); err != nil {
		t.Fatal(err)
	}
	if r.Header.Has("X-Only-First") || string(r.Host) != "b" || len(r.Header.Fields) != 1 {
		t.Errorf("stale state: host %q fields %d", r.Host, len(r.Header.Fields))
	}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

func TestReadRequestReaderError(t *testing.T) {
	boom := errors.New("i/o timeout")
	br := bufio.NewReader(io.MultiReader(strings.NewReader("GET / HTTP/1.1\r\n"), errReader{boom}))
	var r Request
	if err := ReadRequest(br, &r, Limits{}); !errors.Is(err, boom) {
		t.Errorf("err = %v, want the reader's error", err)
	}
}
