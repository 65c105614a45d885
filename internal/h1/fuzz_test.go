package h1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

var requestSeeds = []string{
	"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
	"GET http://a.example:80/p?q HTTP/1.1\r\nHost: a.example\r\n\r\n",
	"OPTIONS * HTTP/1.1\r\nHost: [::1]\r\n\r\n",
	"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\nhello",
	"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
	"POST /x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
	"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n",
	"\r\nGET / HTTP/1.1\nHost: h\n\n",
	"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
}

// FuzzReadRequest checks that ReadRequest never panics, that an accepted request has
// consistent fields, that re-serialising it parses to the same result, and that net/http
// agrees on the framing of every request we accept: a gateway in front of a Go backend must
// not see a different body boundary than the backend.
func FuzzReadRequest(f *testing.F) {
	for _, s := range requestSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var r Request
		br := bufio.NewReaderSize(bytes.NewReader(data), 16)
		err := ReadRequest(br, &r, Limits{MaxHeaderBytes: 4096, MaxHeaders: 32})
		if err != nil {
			if e, ok := err.(*Error); ok && e.Status != 400 && e.Status != 414 && e.Status != 431 && e.Status != 501 && e.Status != 505 {
				t.Fatalf("unexpected status %d", e.Status)
			}
			return
		}
		checkRequest(t, &r)
		head := appendHead(nil, &r)
		var again Request
		if err := ReadRequest(bufio.NewReader(bytes.NewReader(head)), &again, Limits{}); err != nil {
			t.Fatalf("re-serialised head %q: %v", head, err)
		}
		if !bytes.Equal(appendHead(nil, &again), head) || again.ContentLength != r.ContentLength ||
			again.Close != r.Close || !bytes.Equal(again.Host, r.Host) {
			t.Fatalf("round trip differs: %q", head)
		}
		hr, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			// net/http is stricter in a few places (e.g. it checks Host more loosely but
			// refuses some methods); only framing disagreements matter here.
			return
		}
		chunked := len(hr.TransferEncoding) > 0
		if chunked != r.Chunked || (!chunked && hr.ContentLength != r.ContentLength) {
			t.Fatalf("framing differs from net/http: ours len %d chunked %v, net/http len %d te %v",
				r.ContentLength, r.Chunked, hr.ContentLength, hr.TransferEncoding)
		}
	})
}

func checkRequest(t *testing.T, r *Request) {
	t.Helper()
	switch {
	case !validToken(r.Method):
		t.Fatalf("method %q is not a token", r.Method)
	case len(r.Path) == 0:
		t.Fatal("empty path")
	case r.Minor != 0 && r.Minor != 1:
		t.Fatalf("minor %d", r.Minor)
	case r.Chunked != (r.ContentLength == -1) || r.ContentLength < -1:
		t.Fatalf("chunked %v with length %d", r.Chunked, r.ContentLength)
	case r.Chunked && r.Header.Has("Content-Length"):
		t.Fatal("chunked with Content-Length")
	case r.Minor == 1 && len(r.Host) == 0:
		t.Fatal("HTTP/1.1 without host")
	case r.Minor == 0 && r.Chunked:
		t.Fatal("chunked HTTP/1.0")
	case r.Minor == 0 && r.Expect100:
		t.Fatal("Expect100 on HTTP/1.0")
	case r.Header.Count("Host") > 1 || r.Header.Count("Content-Length") > 1:
		t.Fatal("repeated Host or Content-Length accepted")
	}
	if r.Header.Validate() != nil {
		t.Fatalf("parsed header does not validate: %v", r.Header.Validate())
	}
}

func appendHead(dst []byte, r *Request) []byte {
	dst = append(dst, r.Method...)
	dst = append(dst, ' ')
	dst = append(dst, r.Target...)
	dst = append(dst, " HTTP/1."...)
	dst = strconv.AppendInt(dst, int64(r.Minor), 10)
	dst = append(dst, "\r\n"...)
	dst = r.Header.AppendTo(dst)
	return append(dst, "\r\n"...)
}

// FuzzChunked checks that the chunked reader never panics, never returns more bytes than
// the input holds, and that what it accepts survives a ChunkedWriter round trip.
func FuzzChunked(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"3;a=b;c=\"d\"\r\nabc\r\n0\r\nT: v\r\n\r\n",
		"0\r\n\r\n",
		"ffffffffffffffff\r\n",
		"5\r\nhelloXX0\r\n\r\n",
		"1\r\na\r\n1\r\nb\r\n0\r\nA: 1\r\nB: 2\r\n\r\n",
		// Trailer sections with fields that must not be forwarded there (RFC 9110 §6.5.1).
		"5\r\nhello\r\n0\r\nX-Checksum: abc\r\nContent-Length: 5\r\nHost: evil.example\r\nConnection: close\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
		"0\r\nTransfer-Encoding: chunked\r\nSet-Cookie: a=b\r\ncontent-length: 0\r\nX-Sum: 1\r\n\r\n",
		"0\r\nTrailer: X\r\nTE: trailers\r\nX: 1\r\nAuthorization: Basic eDp5\r\n\r\n",
		"0\r\nX_Forwarded_For: 1\r\nCookie: a\r\n\r\n",
	} {
		f.Add([]byte(s), uint8(0))
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk uint8) {
		var b BodyReader
		b.Reset(bufio.NewReaderSize(bytes.NewReader(data), 16), 0, true, 256)
		var body []byte
		p := make([]byte, int(chunk)%32+1)
		var err error
		for range len(data) + 2 { // each Read makes progress or ends
			var n int
			n, err = b.Read(p)
			body = append(body, p[:n]...)
			if err != nil {
				break
			}
		}
		if len(body) > len(data) {
			t.Fatalf("read %d bytes from %d", len(body), len(data))
		}
		if err != io.EOF {
			return
		}
		if !b.Done() {
			t.Fatal("io.EOF but not Done")
		}
		var out bytes.Buffer
		bw := bufio.NewWriter(&out)
		var cw ChunkedWriter
		cw.Reset(bw)
		_, _ = cw.Write(body)
		if err := cw.Close(b.Trailer()); err != nil {
			t.Fatalf("parsed trailer refused by writer: %v", err)
		}
		_ = bw.Flush()
		var again BodyReader
		again.Reset(bufio.NewReader(&out), 0, true, 0)
		got, err := io.ReadAll(&again)
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("round trip: %q, %v; want %q", got, err, body)
		}
		if len(again.Trailer().Fields) != len(b.Trailer().Fields) {
			t.Fatal("trailer fields differ after round trip")
		}
		checkTrailerFilter(t, b.Trailer())
	})
}

// checkTrailerFilter removes the forbidden fields from tr as the proxy does before forwarding
// a trailer section, writes what is left, and checks that it parses to exactly the allowed
// fields, in order, with none of the forbidden ones.
func checkTrailerFilter(t *testing.T, tr *Header) {
	t.Helper()
	var allowed []string
	for _, f := range tr.Fields {
		if !ForbiddenTrailer(f.Name) {
			allowed = append(allowed, string(f.Name)+": "+string(f.Value))
		}
	}
	before := len(tr.Fields)
	if n := tr.RemoveFunc(func(f *Field) bool { return ForbiddenTrailer(f.Name) }); n != before-len(allowed) || len(tr.Fields) != len(allowed) {
		t.Fatalf("RemoveFunc removed %d of %d, left %d; want %d left", n, before, len(tr.Fields), len(allowed))
	}
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	var cw ChunkedWriter
	cw.Reset(bw)
	if err := cw.Close(tr); err != nil {
		t.Fatalf("filtered trailer refused by writer: %v", err)
	}
	_ = bw.Flush()
	var again BodyReader
	again.Reset(bufio.NewReader(&out), 0, true, 0)
	if _, err := io.ReadAll(&again); err != nil {
		t.Fatalf("filtered trailer does not parse: %v", err)
	}
	var got []string
	for _, f := range again.Trailer().Fields {
		if ForbiddenTrailer(f.Name) {
			t.Fatalf("forbidden trailer %q forwarded", f.Name)
		}
		got = append(got, string(f.Name)+": "+string(f.Value))
	}
	if strings.Join(got, "\n") != strings.Join(allowed, "\n") {
		t.Fatalf("forwarded trailer %q, want %q", got, allowed)
	}
}

// TestFuzzSeedsParse keeps the seed corpus honest: the seeds that should parse do.
func TestFuzzSeedsParse(t *testing.T) {
	for _, s := range requestSeeds[:6] {
		if _, err := readRequestString(s, Limits{}); err != nil {
			t.Errorf("%q: %v", strings.SplitN(s, "\r\n", 2)[0], err)
		}
	}
}
