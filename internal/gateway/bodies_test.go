package gateway

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// patternReader yields n bytes of a repeating pattern without holding them in memory.
type patternReader struct{ left int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := int64(len(b))
	if n > p.left {
		n = p.left
	}
	for i := range b[:n] {
		b[i] = byte('a' + i%26)
	}
	p.left -= n
	return int(n), nil
}

// TestLargeBodiesStreamWithFlatMemory sends 1 MiB and 100 MiB bodies up and down through the
// gateway (chunked and with Content-Length) and samples the process heap meanwhile: it must
// stay flat, far below the body size, and every byte must arrive.
func TestLargeBodiesStreamWithFlatMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 400 MiB through loopback")
	}
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		n, _ := io.Copy(h, r.Body)
		size, _ := strconv.ParseInt(r.URL.Query().Get("down"), 10, 64)
		w.Header().Set("X-Got", fmt.Sprintf("%d:%x", n, h.Sum(nil)[:8]))
		if r.URL.Query().Get("chunked") == "" {
			w.Header().Set("Content-Length", strconv.FormatInt(size, 10))
		}
		io.Copy(w, &patternReader{left: size})
	}))
	defer be.Close()
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	var base runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&base)
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
		}
	}()
	c := newClient()
	c.Timeout = 2 * time.Minute
	for _, size := range []int64{1 << 20, 100 << 20} {
		for _, chunked := range []bool{false, true} {
			want := sha256.New()
			io.Copy(want, &patternReader{left: size})
			url := tg.url(fmt.Sprintf("/bulk?down=%d", size))
			if chunked {
				url += "&chunked=1"
			}
			var body io.Reader = &patternReader{left: size}
			req, _ := http.NewRequest("PUT", url, body)
			if !chunked {
				req.ContentLength = size
			}
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if got, w := resp.Header.Get("X-Got"), fmt.Sprintf("%d:%x", size, want.Sum(nil)[:8]); got != w || n != size {
				t.Errorf("size %d chunked %v: backend got %s (want %s), client got %d bytes", size, chunked, got, w, n)
			}
		}
	}
	close(stop)
	<-sampled
	growth := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("peak heap growth while streaming 2x(1 MiB + 100 MiB) each way: %.1f MiB", float64(growth)/(1<<20))
	if growth > 32<<20 {
		t.Errorf("heap grew by %d MiB while streaming; bodies are being buffered", growth>>20)
	}
}
