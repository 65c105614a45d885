package health

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"google.golang.org/grpc"
	grpchealth "google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"

	"sluice/internal/config"
	"sluice/internal/h2pool"
	"sluice/internal/testutil"
	"sluice/internal/upstream"
)

// TestGRPCProbeFullPool: a gRPC health check that finds the target's HTTP/2 pool full
// (h2.max_conns connections, each at the backend's stream limit, every stream a call in
// progress) says nothing of the target's health: the target is busy serving. It counted as
// a failed check (pool_queue_timeout), so a busy target was marked unhealthy, its calls went
// to the others, which filled in turn: under load every target of the upstream went
// unhealthy. The check now neither passes nor fails; the verdict stays until a check gets a
// stream, which then decides (the backend's health service answers NOT_SERVING here).
func TestGRPCProbeFullPool(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	entered, release := make(chan struct{}, 1), make(chan struct{})
	srv := grpc.NewServer(grpc.MaxConcurrentStreams(1),
		grpc.UnknownServiceHandler(func(any, grpc.ServerStream) error {
			entered <- struct{}{}
			<-release
			return nil
		}))
	hs := grpchealth.NewServer()
	healthgrpc.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	addr := ln.Addr().String()
	p := h2pool.New(addr, h2pool.Options{MaxConns: 1, ConnectTimeout: time.Second, PingAfterIdle: time.Minute, PingTimeout: time.Second}, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { p.Close(h2pool.CloseShutdown) })

	u := &upstream.Upstream{ID: "grpc"}
	tg := &upstream.Target{Addr: addr, H2: p}
	u.Swap([]*upstream.Target{tg}, nil)
	a := NewActive(u, config.ActiveCheck{Type: "grpc", Interval: config.Duration(20 * time.Millisecond),
		Timeout: config.Duration(100 * time.Millisecond), HealthyThreshold: 1, UnhealthyThreshold: 1})
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { a.Run(ctx); close(done) }()
	t.Cleanup(func() { stop(); <-done })
	testutil.WaitFor(t, 5*time.Second, "healthy", func() bool { return tg.Health().State == upstream.StateHealthy })

	// A call holds the only stream of the only connection.
	go func() {
		req, _ := http.NewRequest("POST", "http://"+addr+"/x.Y/Hold", http.NoBody)
		req.Header.Set("Content-Type", "application/grpc")
		var at h2pool.Attempt
		if resp, err := p.RoundTrip(req, &at); err == nil {
			resp.Body.Close()
			p.Done(&at)
		}
	}()
	<-entered
	// Checks now wait for a stream until their timeout: three of them, none may count
	// (one that has not ended yet is the fourth's wait).
	testutil.WaitFor(t, 10*time.Second, "three checks that found the pool full", func() bool {
		if h := tg.Health(); h.State != upstream.StateHealthy {
			close(release)
			t.Fatalf("while the pool is full: %+v; want still healthy", h)
		}
		return p.Snapshot().Counters.SlotWaits >= 4
	})
	hs.SetServingStatus("", healthgrpc.HealthCheckResponse_NOT_SERVING)
	close(release)
	testutil.WaitFor(t, 5*time.Second, "unhealthy once a check gets a stream", func() bool { return tg.Health().State == upstream.StateUnhealthy })
}
