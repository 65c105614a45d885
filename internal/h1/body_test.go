package h1

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestBodyReader(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		n       int64
		chunked bool
		want    string
		err     error // expected from io.ReadAll; nil for success
		status  int   // expected *Error status, if any
		rest    string
		trailer map[string]string
	}{
		{name: "length", raw: "hello world", n: 5, want: "hello", rest: " world"},
		{name: "length zero", raw: "next", n: 0, want: "", rest: "next"},
		{name: "length truncated", raw: "hel", n: 5, want: "hel", err: io.ErrUnexpectedEOF},
		{name: "until close", raw: "all of it", n: -1, want: "all of it"},
		{name: "chunked", raw: "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\nNEXT", chunked: true, want: "hello world", rest: "NEXT"},
		{name: "chunked upper hex", raw: "A\r\n0123456789\r\n0\r\n\r\n", chunked: true, want: "0123456789"},
		{name: "chunked leading zeros", raw: "0005\r\nhello\r\n000\r\n\r\n", chunked: true, want: "hello"},
		{name: "chunked extensions", raw: "5;a=b;c;d=\"q \\\" x\"\r\nhello\r\n0;last\r\n\r\n", chunked: true, want: "hello"},
		{name: "chunked trailers", raw: "3\r\nabc\r\n0\r\nChecksum: 42\r\nX-T:  v \r\n\r\nrest", chunked: true, want: "abc", rest: "rest",
			trailer: map[string]string{"checksum": "42", "x-t": "v"}},
		{name: "chunked empty body", raw: "0\r\n\r\n", chunked: true, want: ""},
		{name: "chunk size 0x", raw: "0x5\r\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "chunk size sign", raw: "+5\r\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "chunk size leading space", raw: " 5\r\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "chunk size trailing space", raw: "5 \r\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "chunk size BWS before ext", raw: "5 ;a\r\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "chunk size empty", raw: "\r\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "chunk size 17 digits", raw: "00000000000000005\r\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "chunk size overflow", raw: "8000000000000000\r\nx", chunked: true, status: 400},
		{name: "chunk size bare LF", raw: "5\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "chunk ext empty name", raw: "5;=b\r\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "chunk ext empty value", raw: "5;a=\r\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "chunk ext unterminated quote", raw: "5;a=\"b\r\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "chunk ext CTL", raw: "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "chunk ext too long", raw: "5;a=" + strings.Repeat("b", 5000) + "\r\nhello\r\n0\r\n\r\n", chunked: true, status: 400},
		{name: "data without CRLF", raw: "5\r\nhelloX\r\n0\r\n\r\n", chunked: true, want: "hello", status: 400},
		{name: "data with bare LF", raw: "5\r\nhello\n0\r\n\r\n", chunked: true, want: "hello", status: 400},
		{name: "data longer than size", raw: "3\r\nhello\r\n0\r\n\r\n", chunked: true, want: "hel", status: 400},
		{name: "bad trailer obs-fold", raw: "0\r\nA: b\r\n c\r\n\r\n", chunked: true, status: 400},
		{name: "bad trailer bare LF", raw: "0\r\nA: b\n\r\n", chunked: true, status: 400},
		{name: "trailer too large", raw: "0\r\nA: " + strings.Repeat("b", 20000) + "\r\n\r\n", chunked: true, status: 400},
		{name: "truncated in data", raw: "5\r\nhel", chunked: true, want: "hel", err: io.ErrUnexpectedEOF},
		{name: "truncated in size", raw: "5", chunked: true, err: io.ErrUnexpectedEOF},
		{name: "truncated before data CRLF", raw: "5\r\nhello", chunked: true, want: "hello", err: io.ErrUnexpectedEOF},
		{name: "truncated after data CR", raw: "5\r\nhello\r", chunked: true, want: "hello", err: io.ErrUnexpectedEOF},
		{name: "truncated before last chunk", raw: "5\r\nhello\r\n", chunked: true, want: "hello", err: io.ErrUnexpectedEOF},
		{name: "truncated in trailer", raw: "0\r\nA: b\r\n", chunked: true, err: io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		for _, oneByte := range []bool{false, true} {
			name := tc.name
			var src io.Reader = strings.NewReader(tc.raw)
			if oneByte {
				name += "/one byte"
				src = iotest.OneByteReader(src)
			}
			t.Run(name, func(t *testing.T) {
				br := bufio.NewReaderSize(src, 16)
				var b BodyReader
				b.Reset(br, tc.n, tc.chunked, 0)
				got, err := io.ReadAll(&b)
				if string(got) != tc.want {
					t.Errorf("body = %q, want %q", got, tc.want)
				}
				switch {
				case tc.status != 0:
					if statusOf(err) != tc.status {
						t.Fatalf("err = %v, want status %d", err, tc.status)
					}
					return
				case tc.err != nil:
					if !errors.Is(err, tc.err) {
						t.Fatalf("err = %v, want %v", err, tc.err)
					}
					return
				case err != nil:
					t.Fatalf("err = %v", err)
				}
				if !b.Done() {
					t.Error("Done = false after io.EOF")
				}
				rest, _ := io.ReadAll(br)
				if string(rest) != tc.rest {
					t.Errorf("left in reader = %q, want %q", rest, tc.rest)
				}
				tr := b.Trailer()
				if len(tr.Fields) != len(tc.trailer) {
					t.Errorf("trailer has %d fields, want %d", len(tr.Fields), len(tc.trailer))
				}
				for k, v := range tc.trailer {
					if got, _ := tr.Get(k); string(got) != v {
						t.Errorf("trailer %s = %q, want %q", k, got, v)
					}
				}
			})
		}
	}
}

// TestBodyReaderDoneEarly checks that buffered framing after the last chunk is consumed
// with the last data, so the connection is known reusable without another Read.
func TestBodyReaderDoneEarly(t *testing.T) {
	br := bufio.NewReader(strings.NewReader("5\r\nhello\r\n0\r\n\r\n"))
	var b BodyReader
	b.Reset(br, 0, true, 0)
	p := make([]byte, 64)
	n, err := b.Read(p)
	if err != nil || string(p[:n]) != "hello" {
		t.Fatalf("Read = %q, %v", p[:n], err)
	}
	if !b.Done() {
		t.Error("Done = false with the last chunk buffered")
	}
	if n, err := b.Read(p); n != 0 || err != io.EOF {
		t.Errorf("second Read = %d, %v; want 0, io.EOF", n, err)
	}
}

func TestBodyReaderZeroValue(t *testing.T) {
	var b BodyReader
	if n, err := b.Read(make([]byte, 4)); n != 0 || err != io.EOF || !b.Done() {
		t.Errorf("zero BodyReader: %d, %v, done %v", n, err, b.Done())
	}
}

func TestChunkedWriterRoundTrip(t *testing.T) {
	tests := []struct {
		name    string
		writes  []string
		trailer [][2]string
		wire    string
	}{
		{name: "empty", wire: "0\r\n\r\n"},
		{name: "one chunk", writes: []string{"hello"}, wire: "5\r\nhello\r\n0\r\n\r\n"},
		{name: "empty writes skipped", writes: []string{"", "ab", ""}, wire: "2\r\nab\r\n0\r\n\r\n"},
		{name: "large chunk", writes: []string{strings.Repeat("x", 70000)}, wire: "11170\r\n" + strings.Repeat("x", 70000) + "\r\n0\r\n\r\n"},
		{name: "trailers", writes: []string{"a", "bcd"}, trailer: [][2]string{{"Checksum", "9"}, {"X-Done", "yes"}},
			wire: "1\r\na\r\n3\r\nbcd\r\n0\r\nChecksum: 9\r\nX-Done: yes\r\n\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			bw := bufio.NewWriterSize(&out, 64)
			var cw ChunkedWriter
			cw.Reset(bw)
			for _, w := range tc.writes {
				if n, err := cw.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write = %d, %v", n, err)
				}
			}
			var tr Header
			for _, f := range tc.trailer {
				tr.Add(f[0], f[1])
			}
			if err := cw.Close(&tr); err != nil {
				t.Fatal(err)
			}
			if err := bw.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tc.wire {
				t.Errorf("wire = %q, want %q", trunc(out.String()), trunc(tc.wire))
			}
			var b BodyReader
			b.Reset(bufio.NewReader(&out), 0, true, 0)
			got, err := io.ReadAll(&b)
			if err != nil || string(got) != strings.Join(tc.writes, "") {
				t.Fatalf("read back %q, %v", trunc(string(got)), err)
			}
			if len(b.Trailer().Fields) != len(tc.trailer) {
				t.Errorf("trailer fields = %d, want %d", len(b.Trailer().Fields), len(tc.trailer))
			}
			for _, f := range tc.trailer {
				if v, _ := b.Trailer().Get(f[0]); string(v) != f[1] {
					t.Errorf("trailer %s = %q, want %q", f[0], v, f[1])
				}
			}
		})
	}
}

func TestChunkedWriterRejectsBadTrailer(t *testing.T) {
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	var cw ChunkedWriter
	cw.Reset(bw)
	var tr Header
	tr.Add("X", "a\r\nInjected: 1")
	if err := cw.Close(&tr); statusOf(err) != 400 {
		t.Errorf("Close = %v, want a 400 *Error", err)
	}
	_ = bw.Flush()
	if out.Len() != 0 {
		t.Errorf("wrote %q before refusing", out.String())
	}
}

func trunc(s string) string {
	if len(s) > 40 {
		return s[:40] + "..."
	}
	return s
}

// TestBodyReaderReady: Ready says whether the next Read can return without reading the
// connection, for each place a body can stand when its buffer runs dry.
func TestBodyReaderReady(t *testing.T) {
	tests := []struct {
		name     string
		buffered string // what the reader's buffer holds
		n        int64
		chunked  bool
		reads    int // Reads of one byte made first
		want     bool
	}{
		{name: "length, bytes buffered", buffered: "ab", n: 5, want: true},
		{name: "length, nothing buffered", buffered: "ab", n: 5, reads: 2, want: false},
		{name: "length, done", buffered: "ab", n: 2, reads: 2, want: true},
		{name: "chunked, size line only", buffered: "5\r\n", chunked: true, want: false},
		{name: "chunked, size line and data", buffered: "5\r\nh", chunked: true, want: true},
		{name: "chunked, partial size line", buffered: "5", chunked: true, want: false},
		{name: "chunked, bad size line", buffered: "zz\r\n", chunked: true, want: true},
		{name: "chunked, bare LF", buffered: "5\nhello", chunked: true, want: true},
		{name: "chunked, inside data", buffered: "5\r\nhello", chunked: true, reads: 2, want: true},
		{name: "chunked, data read, CR only", buffered: "1\r\nh\r", chunked: true, reads: 1, want: false},
		{name: "chunked, next size line incomplete", buffered: "1\r\nh\r\n3", chunked: true, reads: 1, want: false},
		{name: "chunked, next chunk buffered", buffered: "1\r\nh\r\n3\r\nabc", chunked: true, reads: 1, want: true},
		{name: "chunked, last chunk without trailer end", buffered: "1\r\nh\r\n0\r\n", chunked: true, reads: 1, want: false},
		{name: "chunked, last chunk and trailer", buffered: "1\r\nh\r\n0\r\nA: b\r\n\r\n", chunked: true, reads: 1, want: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// A reader that returns the buffered bytes and then blocks (fails the test).
			pr, pw := io.Pipe()
			go func() { pw.Write([]byte(tc.buffered)) }()
			br := bufio.NewReader(pr)
			if _, err := br.Peek(len(tc.buffered)); err != nil {
				t.Fatal(err)
			}
			var b BodyReader
			b.Reset(br, tc.n, tc.chunked, 0)
			for range tc.reads {
				if _, err := b.Read(make([]byte, 1)); err != nil && err != io.EOF {
					t.Fatal(err)
				}
			}
			if got := b.Ready(); got != tc.want {
				t.Errorf("Ready() = %v, want %v", got, tc.want)
			}
			pw.Close()
		})
	}
}

// TestBodyReaderRest: Rest hands out the rest of a Content-Length body only when all of it
// is buffered, Skip consumes what was taken (the reader then stands on the next message and
// is Done), and every other case gets nil.
func TestBodyReaderRest(t *testing.T) {
	tests := []struct {
		name      string
		raw       string
		n         int64
		chunked   bool
		readFirst int    // body bytes read with Read before Rest
		want      string // Rest's bytes; "" means nil
		next      string // what the buffered reader holds after Skip(len(want))
	}{
		{name: "all buffered", raw: "hello world", n: 5, want: "hello", next: " world"},
		{name: "after a read", raw: "hello world", n: 5, readFirst: 2, want: "llo", next: " world"},
		{name: "exactly the buffer", raw: "hello", n: 5, want: "hello"},
		{name: "not all arrived", raw: "hel", n: 5},
		{name: "nothing left", raw: "next", n: 0},
		{name: "chunked", raw: "5\r\nhello\r\n0\r\n\r\n", chunked: true},
		{name: "until close", raw: "all of it", n: -1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			br := bufio.NewReader(strings.NewReader(tc.raw))
			br.Peek(len(tc.raw)) // what has arrived is buffered
			var b BodyReader
			b.Reset(br, tc.n, tc.chunked, 0)
			if tc.readFirst > 0 {
				if _, err := io.ReadFull(&b, make([]byte, tc.readFirst)); err != nil {
					t.Fatal(err)
				}
			}
			rest := b.Rest()
			if tc.want == "" {
				if rest != nil {
					t.Fatalf("Rest = %q, want nil", rest)
				}
				return
			}
			if string(rest) != tc.want {
				t.Fatalf("Rest = %q, want %q", rest, tc.want)
			}
			b.Skip(len(rest))
			if !b.Done() {
				t.Error("not Done after Skip of the rest")
			}
			if n, err := b.Read(make([]byte, 8)); n != 0 || err != io.EOF {
				t.Errorf("Read after Skip = %d, %v; want 0, EOF", n, err)
			}
			after, _ := io.ReadAll(br)
			if string(after) != tc.next {
				t.Errorf("reader holds %q after the body, want %q", after, tc.next)
			}
		})
	}
}
