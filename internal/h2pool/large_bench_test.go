package h2pool

import (
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkLargeResponse: 4 MiB response bodies from a Go h2c server through the pool, one
// at a time (throughput of the read path: frames, window updates).
func BenchmarkLargeResponse(b *testing.B) {
	body := make([]byte, 4<<20)
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(body)
	}))
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &protos
	srv.Start()
	defer srv.Close()
	p := New(srv.Listener.Addr().String(), testOptions(), slog.New(slog.DiscardHandler))
	defer p.Close(CloseShutdown)
	buf := make([]byte, 64<<10)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		req, _ := http.NewRequest("GET", "http://backend/large", nil)
		var a Attempt
		resp, err := p.RoundTrip(req, &a)
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{resp.Body}, buf)
		if err != nil || n != int64(len(body)) {
			b.Fatal(n, err)
		}
		resp.Body.Close()
		p.Done(&a)
	}
}
