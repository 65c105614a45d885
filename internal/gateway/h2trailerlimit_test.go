package gateway

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// TestH2RequestTrailerBound: an HTTP/2 request's trailer section is bounded as an HTTP/1.1
// chunked body's is (16 KiB, here counted as RFC 9113 §6.5.2 counts a header list): under
// it every field reaches the backend; over it the request fails with 400 bad_request and the
// backend never gets a complete request. It was bounded only by the decoder's bound (twice
// max_header_bytes), past which the fields were dropped without a word: a backend got the
// first 388 of 400 fields (131 KB of trailers) as if that were all the client sent.
func TestH2RequestTrailerBound(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		w.Header().Set("X-Got-Trailers", fmt.Sprint(len(r.Trailer)))
	}))
	t.Cleanup(be.Close)
	s := startH2(t, false, hostport(be), "")
	for i, tc := range []struct {
		name   string
		fields int // of 300-byte values: 338 bytes each as RFC 9113 counts
		status string
	}{
		{"under the bound", 10, "200"},        // a Go backend takes no more than 4 KiB
		{"over the bound", 200, "400"},        // 67 KB: was forwarded whole
		{"over the decode bound", 400, "400"}, // 135 KB: was cut at 131 KB, silently
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRawH2(t, s)
			r.readSettingsAndAck()
			r.headers(1, false, r.block("POST", "/up", hpack.HeaderField{Name: "te", Value: "trailers"}))
			r.fr.WriteData(1, false, []byte("hello"))
			r.buf.Reset()
			for i := range tc.fields {
				r.enc.WriteField(hpack.HeaderField{Name: fmt.Sprintf("x-t%03d", i), Value: strings.Repeat("v", 300)})
			}
			blk := bytes.Clone(r.buf.Bytes())
			for first := true; len(blk) > 0; first = false {
				n := min(len(blk), 16384)
				if first {
					r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: blk[:n], EndStream: true, EndHeaders: n == len(blk)})
				} else {
					r.fr.WriteContinuation(1, n == len(blk), blk[:n])
				}
				blk = blk[n:]
			}
			var got string
			r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for got == "" {
				f, err := r.fr.ReadFrame()
				if err != nil {
					t.Fatal(err)
				}
				if h, ok := f.(*http2.MetaHeadersFrame); ok {
					got = h.PseudoValue("status")
					n := ""
					for _, hf := range h.RegularFields() {
						if hf.Name == "x-got-trailers" {
							n = hf.Value
						}
					}
					if got == "200" && n != fmt.Sprint(tc.fields) {
						t.Fatalf("the backend got %s trailer fields of %d", n, tc.fields)
					}
				}
			}
			if got != tc.status {
				t.Fatalf("status %s, want %s", got, tc.status)
			}
			if l := s.accessLines(i + 1)[i]; tc.status == "400" && l["reason"] != "bad_request" {
				t.Fatalf("access line %v", l)
			}
		})
	}
}
