package gateway

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"

	"sluice/internal/h2pool"
	"sluice/internal/testutil"
)

// countingListener counts the connections it accepted.
type countingListener struct {
	net.Listener
	n atomic.Int64
}

func (l *countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.n.Add(1)
	}
	return c, err
}

// TestH2UpstreamMaxRequests: keepalive.max_requests applies to an h2c upstream's HTTP/2
// connections. 4 gRPC clients make 100 concurrent unary calls through the gateway to a
// grpc-go server: all succeed, each backend connection carried 10 streams (10 connections,
// plus at most one replacement dialed ahead and a warm-up), every closed connection's life
// record says max_requests after 10 streams, and the metric counts them by that reason.
func TestH2UpstreamMaxRequests(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: ln}
	serveGRPC(t, cl, &grpcBackend{done: make(chan error, 4)})
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
    protocols: [http1, h2c]
upstreams:
  - id: grpc
    targets: [{address: "{{backend}}"}]
    protocol: h2c
    keepalive: {max_requests: 10, max_lifetime: 1h}
routes:
  - id: all
    upstream: grpc
admin: {address: "127.0.0.1:0"}
`, map[string]string{"backend": ln.Addr().String()})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 4 {
		cc, err := grpc.NewClient(tg.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cc.Close() })
		c := testgrpc.NewTestServiceClient(cc)
		wg.Go(func() {
			for range 25 {
				r, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 2000, Payload: payload(100)})
				if err != nil || len(r.GetPayload().GetBody()) != 2100 {
					failed.Add(1)
					t.Errorf("UnaryCall: %v, %d bytes; want 2100", err, len(r.GetPayload().GetBody()))
				}
			}
		})
	}
	wg.Wait()
	pool := func() h2pool.Snapshot {
		ts, _ := adminView{tg.gw}.Targets("grpc")
		return *ts[0].H2
	}
	testutil.WaitFor(t, 3*time.Second, "10 connections closed for max_requests", func() bool {
		return pool().Closes[h2pool.CloseMaxRequests] == 10
	})
	s := pool()
	for _, r := range s.History {
		if r.Reason != h2pool.CloseMaxRequests || r.Streams != 10 {
			t.Errorf("life record %+v; want max_requests after 10 streams", r)
		}
	}
	if n := cl.n.Load(); n < 10 || n > 11 {
		t.Errorf("backend accepted %d connections for 100 calls at max_requests 10; want 10 or 11 (a replacement dialed ahead)", n)
	}
	if s.MaxRequests != 10 || s.MaxLifetime != time.Hour || s.Counters.Dials != s.Counters.Replacements+1 {
		t.Errorf("pool view: max_requests %d, max_lifetime %s, %d dials, %d replacement dials; want 10, 1h, every dial but the first ahead",
			s.MaxRequests, s.MaxLifetime, s.Counters.Dials, s.Counters.Replacements)
	}
	f, _ := scrape(t, tg.adminURL("/metrics"))
	if v, _ := f.value("sluice_upstream_h2_connections_closed_total", map[string]string{"upstream": "grpc", "reason": "max_requests"}); v != 10 {
		t.Errorf("sluice_upstream_h2_connections_closed_total{reason=max_requests} = %v; want 10", v)
	}
	// A replacement for the last connection may be dialed between the view and the scrape.
	if v, _ := f.value("sluice_upstream_h2_replacement_dials_total", map[string]string{"upstream": "grpc"}); v < float64(s.Counters.Replacements) || v > float64(pool().Counters.Replacements) || v == 0 {
		t.Errorf("sluice_upstream_h2_replacement_dials_total = %v; want the pool's count, %d or the one after", v, s.Counters.Replacements)
	}
}
