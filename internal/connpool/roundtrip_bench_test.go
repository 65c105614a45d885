package connpool

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"sluice/internal/h1"
)

// BenchmarkRoundTrip runs whole HTTP/1.1 exchanges against a real backend two ways, side by
// side: through this pool with the checkout check (what the proxy does; BenchmarkCheck
// prices the check alone) and through net/http.Transport (the standard library's pool).
// Compare the ratios, not the absolute numbers.
func BenchmarkRoundTrip(b *testing.B) {
	body := strings.Repeat("x", 300)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	defer be.Close()
	addr := strings.TrimPrefix(be.URL, "http://")
	req := []byte("GET /bench HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n")

	b.Run("pool", func(b *testing.B) {
		p := New(addr, Options{Enabled: true, Learn: true}, nil)
		defer p.Close(CloseShutdown)
		ctx := context.Background()
		var resp h1.Response
		var br h1.BodyReader
		buf := make([]byte, 4096)
		b.ReportAllocs()
		for b.Loop() {
			c, err := p.Get(ctx, true)
			if err != nil {
				b.Fatal(err)
			}
			c.W.Write(req)
			if err := c.W.Flush(); err != nil {
				b.Fatal(err)
			}
			if err := h1.ReadResponse(c.R, &resp, false, h1.Limits{}); err != nil {
				b.Fatal(err)
			}
			br.Reset(c.R, resp.ContentLength, resp.Chunked, 0)
			for {
				if _, err := br.Read(buf); err == io.EOF {
					break
				} else if err != nil {
					b.Fatal(err)
				}
			}
			p.Release(c, Outcome{Reusable: !resp.Close, KeepAliveMax: -1})
		}
	})
	b.Run("net-http-transport", func(b *testing.B) {
		tr := &http.Transport{MaxIdleConnsPerHost: 64}
		defer tr.CloseIdleConnections()
		hreq, _ := http.NewRequest("GET", be.URL+"/bench", nil)
		hreq.Header.Set("User-Agent", "bench")
		hreq.Header.Set("Accept", "*/*")
		b.ReportAllocs()
		for b.Loop() {
			resp, err := tr.RoundTrip(hreq)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
}
