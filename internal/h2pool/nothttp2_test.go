package h2pool

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestClientHeadersWriteMeetsHTTP1Reset: a stream whose HEADERS write is cut by the reset of
// an HTTP/1.1 server that answered the preface with a 400 and closed with the client's
// bytes unread fails with ErrNotHTTP2 (the read loop's verdict, waited for), although its
// write met the reset before the read loop handled the answer (the read loop's GOAWAY waits
// behind that write). A reset without an answer proves nothing: the HEADERS cut short fail
// as unprocessed, never as ErrNotHTTP2. The head is 8 MB, more than the socket buffers
// take while the peer reads only its first 64 KB, so the write is in progress when the
// reset comes.
func TestClientHeadersWriteMeetsHTTP1Reset(t *testing.T) {
	for _, tc := range []struct {
		name    string
		answer  bool
		notHTTP bool
	}{
		{name: "answered 400", answer: true, notHTTP: true},
		{name: "reset without an answer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cc := newRawPeer(t, func(p *rawPeer) { // returning closes, the head unread: a reset
				if _, err := io.CopyN(io.Discard, p.nc, 64<<10); err != nil {
					return
				}
				if tc.answer {
					_, _ = io.WriteString(p.nc, "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
				}
			})
			req, _ := http.NewRequest("GET", "http://backend/x", nil)
			req.Header.Set("X-Big", strings.Repeat("x", 8<<20))
			err := roundTripBounded(t, cc, req, "the stream hung")
			if err == nil {
				t.Fatal("the stream got a response")
			}
			if errors.Is(err, ErrNotHTTP2) != tc.notHTTP {
				t.Errorf("stream failed with %v; want ErrNotHTTP2 %v", err, tc.notHTTP)
			}
			if !tc.notHTTP && !errors.Is(err, ErrUnprocessed) {
				t.Errorf("stream failed with %v; want ErrUnprocessed (its HEADERS cut short)", err)
			}
		})
	}
}
