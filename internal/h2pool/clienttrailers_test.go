package h2pool

import (
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
)

// lateTrailer is a streamed request body (not held) that fills its request's trailer map
// when its last read returns io.EOF, as the proxy's h2Body does.
type lateTrailer struct {
	r       io.Reader
	trailer http.Header
	fill    http.Header
}

func (b *lateTrailer) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err == io.EOF {
		for k, vs := range b.fill {
			b.trailer[k] = vs
		}
	}
	return n, err
}

func (b *lateTrailer) Close() error { return nil }

// TestClientRequestTrailers: a request with a trailer map sends its body, then its
// trailers ending the stream. A held body's trailers are declared in the head (the Go
// server keeps only declared trailers: the values arriving prove both); a streamed
// body's map is read after the body's last read (filled then); an empty map ends the
// stream with no trailers, the body intact.
func TestClientRequestTrailers(t *testing.T) {
	var writes atomic.Int64
	p := newClientTestPool(t, func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write([]byte(string(b) + "|" + r.Trailer.Get("X-Sum") + "|" + r.Trailer.Get("X-Late")))
	}, &writes)
	call := func(req *http.Request) string {
		t.Helper()
		resp := roundTrip(t, p, req)
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}

	held, _ := http.NewRequest("POST", "http://backend/held", nil)
	held.Body = heldBody{strings.NewReader("hello")}
	held.ContentLength = -1
	held.Trailer = http.Header{"X-Sum": {"abc"}, "X-Late": {"1"}}
	if got, want := call(held), "hello|abc|1"; got != want {
		t.Errorf("held body with trailers: backend saw %q, want %q", got, want)
	}

	emptyHeld, _ := http.NewRequest("POST", "http://backend/held", nil)
	emptyHeld.Body = heldBody{strings.NewReader("")}
	emptyHeld.ContentLength = -1
	emptyHeld.Trailer = http.Header{"X-Sum": {"only"}}
	if got, want := call(emptyHeld), "|only|"; got != want {
		t.Errorf("empty held body with trailers: backend saw %q, want %q", got, want)
	}

	streamed, _ := http.NewRequest("POST", "http://backend/streamed", nil)
	streamed.ContentLength = -1
	streamed.Header.Set("Trailer", "X-Late")
	streamed.Trailer = http.Header{}
	pr, pw := io.Pipe()
	go func() {
		pw.Write([]byte("part one, "))
		pw.Write([]byte("part two"))
		pw.Close()
	}()
	streamed.Body = &lateTrailer{r: pr, trailer: streamed.Trailer, fill: http.Header{"X-Late": {"filled at the end"}}}
	if got, want := call(streamed), "part one, part two||filled at the end"; got != want {
		t.Errorf("streamed body filling its trailers at its end: backend saw %q, want %q", got, want)
	}

	empty, _ := http.NewRequest("POST", "http://backend/streamed", nil)
	empty.ContentLength = -1
	empty.Trailer = http.Header{}
	empty.Body = &lateTrailer{r: strings.NewReader("no trailers after all"), trailer: empty.Trailer}
	if got, want := call(empty), "no trailers after all||"; got != want {
		t.Errorf("streamed body with an empty trailer map: backend saw %q, want %q", got, want)
	}
}
