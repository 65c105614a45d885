package gateway

import (
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/internal/h2pool"
	"sluice/internal/testutil"
)

// BenchmarkH2Upstream: GET requests from one HTTP/1.1 connection proxied to an h2c backend
// (testutil.RacyH2 with nothing racy, in this process), one at a time. allocs/op counts the
// whole process: the gateway, the HTTP/2 client library, and the test backend. "pool-only"
// runs the same requests through h2pool and the library straight to the backend, without
// the gateway; the difference is the proxy's HTTP/2 attempt path (docs/design.md).
//
//	go test ./internal/gateway -run '^$' -bench H2Upstream -benchmem -count 3
func BenchmarkH2Upstream(b *testing.B) {
	be, err := testutil.NewRacyH2(testutil.RacyH2Options{HeaderTableSize: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	b.Run("gateway", func(b *testing.B) {
		cfg := strings.Replace(benchConfig(be.Addr(), 1), "    keepalive:", "    protocol: h2c\n    keepalive:", 1)
		addr := benchGateway(b, cfg, false)
		runClient(b, addr, "/r")
	})
	b.Run("pool-only", func(b *testing.B) {
		p := h2pool.New(be.Addr(), h2pool.Options{PingAfterIdle: time.Minute, PingTimeout: time.Second}, slog.New(slog.DiscardHandler))
		defer p.Close(h2pool.CloseShutdown)
		req, _ := http.NewRequest("GET", "http://"+be.Addr()+"/r", nil)
		b.ReportAllocs()
		for b.Loop() {
			var a h2pool.Attempt
			resp, err := p.RoundTrip(req, &a)
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			p.Done(&a)
		}
	})
}
