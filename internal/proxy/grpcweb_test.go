package proxy

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/iotest"

	"sluice/internal/h1"
	"sluice/internal/reason"
)

// TestBase64Reader: a grpc-web-text request body decodes whole whatever its chunking (each
// chunk padded on its own, line breaks between them) and however it is read, and a body
// that is not base64, or ends in a partial group, fails.
func TestBase64Reader(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 5000)
	for i := range data {
		data[i] = byte(r.IntN(256))
	}
	for _, tc := range []struct {
		name   string
		chunks []int // sizes of the pieces encoded one by one
		sep    string
		read   func(io.Reader) io.Reader
	}{
		{"one piece", []int{5000}, "", func(r io.Reader) io.Reader { return r }},
		{"padded pieces", []int{1, 2, 3, 4, 5, 1000, 3985}, "", func(r io.Reader) io.Reader { return r }},
		{"line breaks, one byte reads", []int{7, 993, 4000}, "\r\n", iotest.OneByteReader},
		{"half reads", []int{2500, 2500}, "", iotest.HalfReader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var enc strings.Builder
			off := 0
			for _, n := range tc.chunks {
				enc.WriteString(base64.StdEncoding.EncodeToString(data[off : off+n]))
				enc.WriteString(tc.sep)
				off += n
			}
			br := &base64Reader{r: io.NopCloser(tc.read(strings.NewReader(enc.String())))}
			got, err := io.ReadAll(tc.read(br))
			if err != nil || !bytes.Equal(got, data) {
				t.Errorf("decoded %d bytes, %v; want the %d bytes whole", len(got), err, len(data))
			}
		})
	}
	for _, bad := range []string{"QQ=", "Q!==", "QUJD\x00AAA"} {
		br := &base64Reader{r: io.NopCloser(strings.NewReader(bad))}
		if _, err := io.ReadAll(br); !errors.Is(err, errBase64Body) {
			t.Errorf("%q: %v; want errBase64Body", bad, err)
		}
	}
}

// TestWebBodyText: the -text response body, encoded read by read, decodes as one base64
// string (no padding before its end) to the messages and the trailer frame.
func TestWebBodyText(t *testing.T) {
	w := &webBody{mode: webText}
	var out, want []byte
	for _, n := range []int{1, 2, 3, 4, 100, 5, 0, 7} {
		p := bytes.Repeat([]byte{byte(n)}, n)
		want = append(want, p...)
		out = append(out, w.add(p)...)
	}
	var tr h1.Header
	tr.Add("Grpc-Status", "0")
	tr.Add("Grpc-Message", "")
	out = append(out, w.end(&tr)...)
	want = append(want, 0x80, 0, 0, 0, 32)
	want = append(want, "grpc-status: 0\r\ngrpc-message: \r\n"...)
	got, err := base64.StdEncoding.DecodeString(string(out))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("decoded %q, %v; want %q", got, err, want)
	}
}

// endsAtBoundary is the reference for webBody.atBoundary: whether b is whole message frames
// (5-byte header, then as many bytes as its length says).
func endsAtBoundary(b []byte) bool {
	for len(b) > 0 {
		if len(b) < 5 {
			return false
		}
		n := 5 + uint64(binary.BigEndian.Uint32(b[1:5]))
		if n > uint64(len(b)) {
			return false
		}
		b = b[n:]
	}
	return true
}

// TestWebBodyTrack: the response's message framing is followed across reads of any size
// (a byte at a time, random pieces): after each read the body is between two frames exactly
// when the bytes so far are whole frames, empty frames and a length near 4 GiB included.
func TestWebBodyTrack(t *testing.T) {
	var body []byte
	for _, n := range []int{0, 1, 0, 300, 4, 70000, 0} {
		body = binary.BigEndian.AppendUint32(append(body, byte(n%2)), uint32(n))
		body = append(body, bytes.Repeat([]byte{0x80}, n)...) // payload bytes that look like flags
	}
	body = append(body, 0, 0xff, 0xff, 0xff, 0xff, 1, 2, 3) // a frame that never ends
	r := rand.New(rand.NewPCG(3, 4))
	for _, mode := range []int{webBinary, webText} {
		for _, pieces := range []string{"bytes", "random"} {
			w := &webBody{mode: mode}
			for off := 0; off < len(body); {
				n := 1
				if pieces == "random" {
					n = min(len(body)-off, 1+r.IntN(9000))
				}
				w.add(body[off : off+n])
				off += n
				if got, want := w.atBoundary(), endsAtBoundary(body[:off]); got != want {
					t.Fatalf("mode %d, %s: after %d bytes atBoundary %v; want %v", mode, pieces, off, got, want)
				}
			}
		}
	}
}

// endSpy stands between the grpc-web-text decoder and the attempt's body, and notes
// whether the body's end was signalled (h2Body.done) when a read of it returned.
type endSpy struct {
	*h2Body
	signalled bool
}

func (s *endSpy) Read(p []byte) (int, error) {
	n, err := s.h2Body.Read(p)
	select {
	case <-s.done:
		s.signalled = true
	default:
	}
	return n, err
}

// TestGRPCWebTextEndAfterVerdict: the end of a grpc-web-text body whose last bytes come
// with it is signalled (h2Body.done, which an HTTP/1.1 client's answer waits for:
// attemptH2) only once the decoder judged those bytes, so that a bad last group is already
// the client's 400 bad_request then. It was signalled in the read that got the bytes,
// before the decoder saw them: under load, the backend's 200 went out instead, about once
// in 200 runs of the gateway's TestGRPCWebTextBadBodyAfterHead.
func TestGRPCWebTextEndAfterVerdict(t *testing.T) {
	for _, tc := range []struct {
		name string
		body string
		held bool        // the whole body was held before the attempt (readBodyPrefix)
		want reason.Code // the client's failure recorded, "" for none
	}{
		{name: "whole", body: "AAAAAAAA"},
		{name: "bad last group", body: "AAAA*AAA", want: reason.BadRequest},
		{name: "partial last group", body: "AAAAAA", want: reason.BadRequest},
		{name: "held whole", body: "AAAAAAAA", held: true},
		{name: "held, bad last group", body: "AAAA*AAA", held: true, want: reason.BadRequest},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rd := newRecorder(t, context.Background(), "POST / HTTP/1.1\r\nHost: x\r\n\r\n", "")
			rd.body = iotest.DataErrReader(strings.NewReader(tc.body)) // the last bytes come with the end
			fwd := &forward{}
			fwd.ds = rd
			if tc.held {
				rd.body = strings.NewReader("")
				fwd.pre, fwd.preEOF = []byte(tc.body), true
			}
			body := &h2Body{fwd: fwd, done: make(chan struct{})}
			req := httptest.NewRequest("POST", "/", nil)
			toGRPCRequest(req, webText, body)
			spy := &endSpy{h2Body: body}
			req.Body.(*base64Reader).r = spy
			io.ReadAll(req.Body)
			if spy.signalled {
				t.Error("the body's end was signalled before the decoder judged its last bytes")
			}
			select {
			case <-body.done:
			default:
				t.Fatal("the body's end was never signalled")
			}
			var re *reason.Error
			if err := body.clientErr(); tc.want == "" && err != nil || tc.want != "" && (!errors.As(err, &re) || re.Code != tc.want) {
				t.Errorf("client's failure %v; want %q", err, tc.want)
			}
		})
	}
}
