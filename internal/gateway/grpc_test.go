package gateway

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"sluice/internal/testutil"
)

// grpcBackend is a grpc-go TestService: payloads of the asked sizes, EchoStatus answered as
// the call's status (by StreamingOutputCall after its messages: in trailers, not
// trailers-only), and a note on done when a call's context ends (deadline, cancel).
type grpcBackend struct {
	testgrpc.UnimplementedTestServiceServer
	done chan error
}

func payload(n int32) *testgrpc.Payload { return &testgrpc.Payload{Body: make([]byte, n)} }

func (b *grpcBackend) UnaryCall(ctx context.Context, req *testgrpc.SimpleRequest) (*testgrpc.SimpleResponse, error) {
	if s := req.GetResponseStatus(); s != nil {
		return nil, status.Error(codes.Code(s.Code), s.Message)
	}
	if req.ResponseSize < 0 { // "sleep": wait for the call's end
		<-ctx.Done()
		b.done <- ctx.Err()
		return nil, ctx.Err()
	}
	return &testgrpc.SimpleResponse{Payload: payload(req.ResponseSize + int32(len(req.GetPayload().GetBody())))}, nil
}

func (b *grpcBackend) StreamingOutputCall(req *testgrpc.StreamingOutputCallRequest, s grpc.ServerStreamingServer[testgrpc.StreamingOutputCallResponse]) error {
	for _, p := range req.ResponseParameters {
		if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: payload(p.Size)}); err != nil {
			return err
		}
	}
	if st := req.GetResponseStatus(); st != nil {
		return status.Error(codes.Code(st.Code), st.Message)
	}
	return nil
}

func (b *grpcBackend) StreamingInputCall(s grpc.ClientStreamingServer[testgrpc.StreamingInputCallRequest, testgrpc.StreamingInputCallResponse]) error {
	var n int32
	for {
		m, err := s.Recv()
		if err == io.EOF {
			return s.SendAndClose(&testgrpc.StreamingInputCallResponse{AggregatedPayloadSize: n})
		}
		if err != nil {
			return err
		}
		n += int32(len(m.GetPayload().GetBody()))
	}
}

func (b *grpcBackend) FullDuplexCall(s grpc.BidiStreamingServer[testgrpc.StreamingOutputCallRequest, testgrpc.StreamingOutputCallResponse]) error {
	for {
		m, err := s.Recv()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			b.done <- err
			return err
		}
		for _, p := range m.ResponseParameters {
			if err := s.Send(&testgrpc.StreamingOutputCallResponse{Payload: payload(p.Size)}); err != nil {
				return err
			}
		}
	}
}

// grpcThroughGateway starts a grpc-go server, a gateway with an h2c listener and the server
// as an h2c upstream, and returns a client connected to the gateway.
func grpcThroughGateway(t *testing.T) (testgrpc.TestServiceClient, *grpcBackend, *testGateway) {
	t.Helper()
	return grpcGateway(t, grpcGatewayYAML)
}

// grpcGatewayYAML is grpcThroughGateway's config: an h2c listener, the service as an h2c
// upstream.
const grpcGatewayYAML = `
listeners:
  - address: 127.0.0.1:0
    protocols: [http1, h2c]
upstreams:
  - id: grpc
    targets: [{address: "{{backend}}"}]
    protocol: h2c
routes:
  - id: all
    upstream: grpc
`

// grpcGateway starts a grpc-go TestService and a gateway from yaml, whose {{backend}} is
// the service's address, and returns a gRPC client through the gateway's listener.
func grpcGateway(t *testing.T, yaml string) (testgrpc.TestServiceClient, *grpcBackend, *testGateway) {
	t.Helper()
	be := &grpcBackend{done: make(chan error, 4)}
	tg := startGateway(t, yaml, map[string]string{"backend": grpcServe(t, be)})
	cc, err := grpc.NewClient(tg.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc), be, tg
}

// TestGRPCThroughGateway runs the four kinds of gRPC call through the gateway (h2c in front,
// h2c to a grpc-go server), with their trailers (grpc-status), an error status passed
// through, a deadline and a cancellation that reach the backend.
func TestGRPCThroughGateway(t *testing.T) {
	c, be, _ := grpcThroughGateway(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	t.Run("unary", func(t *testing.T) {
		r, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseSize: 1000, Payload: payload(24)})
		if err != nil || len(r.GetPayload().GetBody()) != 1024 {
			t.Fatalf("UnaryCall: %v, %d bytes; want 1024", err, len(r.GetPayload().GetBody()))
		}
	})
	t.Run("server streaming", func(t *testing.T) {
		s, err := c.StreamingOutputCall(ctx, &testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 10}, {Size: 70000}, {Size: 3}}})
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		for {
			m, err := s.Recv()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(m.GetPayload().GetBody()))
		}
		if len(sizes) != 3 || sizes[1] != 70000 {
			t.Errorf("sizes %v; want [10 70000 3]", sizes)
		}
	})
	t.Run("client streaming", func(t *testing.T) {
		s, err := c.StreamingInputCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range []int32{100, 80000, 5} {
			if err := s.Send(&testgrpc.StreamingInputCallRequest{Payload: payload(n)}); err != nil {
				t.Fatal(err)
			}
		}
		r, err := s.CloseAndRecv()
		if err != nil || r.AggregatedPayloadSize != 80105 {
			t.Fatalf("CloseAndRecv: %v, %d; want 80105", err, r.GetAggregatedPayloadSize())
		}
	})
	t.Run("bidi ping-pong", func(t *testing.T) {
		// Each answer must come back before the next request is sent: the response streams
		// while the request body is still open (full duplex through the gateway).
		s, err := c.FullDuplexCall(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for i, n := range []int32{1, 20000, 7} {
			if err := s.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: n}}}); err != nil {
				t.Fatal(err)
			}
			m, err := s.Recv()
			if err != nil || int32(len(m.GetPayload().GetBody())) != n {
				t.Fatalf("ping %d: %v, %d bytes; want %d", i, err, len(m.GetPayload().GetBody()), n)
			}
		}
		s.CloseSend()
		if _, err := s.Recv(); err != io.EOF {
			t.Fatalf("after CloseSend: %v; want io.EOF (status OK in the trailers)", err)
		}
	})
	t.Run("error status passed through", func(t *testing.T) {
		_, err := c.UnaryCall(ctx, &testgrpc.SimpleRequest{ResponseStatus: &testgrpc.EchoStatus{Code: int32(codes.NotFound), Message: "no such thing"}})
		if st := status.Convert(err); st.Code() != codes.NotFound || st.Message() != "no such thing" {
			t.Errorf("status %v %q; want NotFound \"no such thing\"", st.Code(), st.Message())
		}
	})
	t.Run("deadline", func(t *testing.T) {
		dctx, dcancel := context.WithTimeout(ctx, 200*time.Millisecond)
		defer dcancel()
		_, err := c.UnaryCall(dctx, &testgrpc.SimpleRequest{ResponseSize: -1})
		if st := status.Convert(err); st.Code() != codes.DeadlineExceeded {
			t.Errorf("status %v %q; want DeadlineExceeded", st.Code(), st.Message())
		}
		select { // grpc-timeout bounded the upstream attempt: the backend's call ended too
		case <-be.done:
		case <-time.After(3 * time.Second):
			t.Error("the backend's call did not end after the deadline")
		}
	})
	t.Run("cancellation", func(t *testing.T) {
		cctx, ccancel := context.WithCancel(ctx)
		s, err := c.FullDuplexCall(cctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Send(&testgrpc.StreamingOutputCallRequest{ResponseParameters: []*testgrpc.ResponseParameters{{Size: 1}}}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Recv(); err != nil {
			t.Fatal(err)
		}
		ccancel()
		select {
		case err := <-be.done:
			if status.Code(err) != codes.Canceled && !errors.Is(err, context.Canceled) {
				t.Logf("backend call ended with %v", err)
			}
		case <-time.After(3 * time.Second):
			t.Error("the backend's call did not end after the client canceled")
		}
	})
}

// TestGRPCUpstreamDown: a gRPC call to an upstream that refuses connections gets the
// gateway's UNAVAILABLE with the reason code in grpc-message, not a bare 502; the HTTP/2
// pool's failed dials are counted in the target's sluice_upstream_dial_errors_total as the
// HTTP/1.1 pool's are (they were not: the series stayed at 0). Its access log line keeps the
// gateway's 502 and reason, with the status the client was sent in grpc_status (14), which
// sluice_grpc_calls_total counts.
func TestGRPCUpstreamDown(t *testing.T) {
	tg := startGateway(t, grpcGatewayYAML, map[string]string{"backend": testutil.RefusingAddr(t)})
	cc, err := grpc.NewClient(tg.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	_, err = testgrpc.NewTestServiceClient(cc).UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
	if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() == "" {
		t.Errorf("status %v %q; want Unavailable with the reason", st.Code(), st.Message())
	}
	// One call, two attempts (retry.attempts 2), each a refused dial.
	f := gathered(t, tg)
	if v, _ := f.value("sluice_upstream_dial_errors_total", map[string]string{"upstream": "grpc"}); v != 2 {
		t.Errorf("sluice_upstream_dial_errors_total = %v, want 2", v)
	}
	l := tg.accessLines(1)[0]
	if l["grpc_status"] != float64(codes.Unavailable) || l["status"] != 502.0 || l["reason"] != "upstream_connect_refused" {
		t.Errorf("access log: status %v reason %v grpc_status %v; want 502 upstream_connect_refused, grpc_status 14", l["status"], l["reason"], l["grpc_status"])
	}
	h2Counter(t, tg, "sluice_grpc_calls_total", map[string]string{"route": "all", "grpc_code": "UNAVAILABLE"}, 1)
}

// TestGRPCHealthCheck: an active check of type grpc (grpc.health.v1 over the target's HTTP/2
// pool) marks a SERVING grpc-go server healthy and a NOT_SERVING one unhealthy.
func TestGRPCHealthCheck(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer()
	healthgrpc.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	defer srv.Stop()
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: grpc
    targets: [{address: "{{backend}}"}]
    protocol: h2c
    health_check:
      active: {type: grpc, interval: 50ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}
routes:
  - id: all
    upstream: grpc
`, map[string]string{"backend": ln.Addr().String()})
	state := func() string {
		ts, _ := adminView{tg.gw}.Targets("grpc")
		return ts[0].Health
	}
	testutil.WaitFor(t, 3*time.Second, "healthy", func() bool { return state() == "healthy" })
	hs.SetServingStatus("", healthgrpc.HealthCheckResponse_NOT_SERVING)
	testutil.WaitFor(t, 3*time.Second, "unhealthy", func() bool { return state() == "unhealthy" })
	hs.SetServingStatus("", healthgrpc.HealthCheckResponse_SERVING)
	testutil.WaitFor(t, 3*time.Second, "healthy again", func() bool { return state() == "healthy" })
}
