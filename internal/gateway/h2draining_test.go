package gateway

import (
	"context"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// TestH2UpstreamLongStreamKeepsNoSlot: a bidi gRPC stream held open through the gateway on
// an upstream with h2.max_conns 1 and keepalive.max_requests 1 retires its connection at
// once, yet unary calls beside it complete promptly on new connections (h2.max_draining
// defaults to max_conns); the long stream still works afterwards, and the pool view shows it
// draining.
func TestH2UpstreamLongStreamKeepsNoSlot(t *testing.T) {
	c, _, tg := grpcGateway(t, `
listeners:
  - address: 127.0.0.1:0
    protocols: [http1, h2c]
upstreams:
  - id: grpc
    targets: [{address: "{{backend}}"}]
    protocol: h2c
    h2: {max_conns: 1}
    keepalive: {max_requests: 1}
routes:
  - id: all
    upstream: grpc
admin: {address: "127.0.0.1:0"}
`)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	bidi, err := c.FullDuplexCall(ctx)
	if err != nil {
		t.Fatal(err)
	}
	echo := func() {
		t.Helper()
		if err := bidi.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}}}); err != nil {
			t.Fatal(err)
		}
		if r, err := bidi.Recv(); err != nil || len(r.GetPayload().GetBody()) != 10 {
			t.Fatalf("bidi echo: %v", err)
		}
	}
	echo() // the stream is open on the upstream connection, which retired at max_requests 1
	for i := range 3 {
		uctx, ucancel := context.WithTimeout(ctx, 2*time.Second)
		start := time.Now()
		_, err := c.UnaryCall(uctx, &testgrpc.SimpleRequest{ResponseSize: 5})
		ucancel()
		if took := time.Since(start); err != nil || took > time.Second {
			t.Fatalf("unary call %d beside the long stream: %v after %s; want a prompt answer", i, err, took)
		}
	}
	ts, _ := adminView{tg.gw}.Targets("grpc")
	if s := ts[0].H2; s.MaxConns != 1 || s.MaxDraining != 1 || s.Draining != 1 {
		t.Errorf("pool view max_conns %d, max_draining %d, draining %d; want 1, 1 (the default), 1", s.MaxConns, s.MaxDraining, s.Draining)
	}
	echo() // the long stream was not cut
	if err := bidi.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := bidi.Recv(); err == nil {
		t.Fatal("bidi: a message after CloseSend; want the end of the stream")
	}
	f, _ := scrape(t, tg.adminURL("/metrics"))
	if v, ok := f.value("sluice_upstream_h2_draining_connections", map[string]string{"upstream": "grpc"}); !ok || v > 1 {
		t.Errorf("sluice_upstream_h2_draining_connections = %v (%v); want at most 1", v, ok)
	}
}
