package proxy

import (
	"bytes"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"

	"sluice/internal/h1"
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
