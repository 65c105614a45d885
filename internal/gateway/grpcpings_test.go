package gateway

import (
	"context"
	"strings"
	"testing"
	"time"

	testgrpc "google.golang.org/grpc/interop/grpc_testing"
)

// TestGRPCClientPingsAfterData: grpc-go's client sends a PING after each response's DATA
// (its BDP estimator), one per unary call on a busy connection. Those follow the gateway's
// own stream frames and do not count as a control-frame flood: with the limit at 5 per
// second, a second of back-to-back calls on one connection all succeed and no limit is hit
// (counting them, the connection was cut with GOAWAY ENHANCE_YOUR_CALM, issue #16).
func TestGRPCClientPingsAfterData(t *testing.T) {
	c, _, tg := grpcGateway(t, strings.Replace(grpcGatewayYAML, "    protocols: [http1, h2c]\n",
		"    name: edge\n    protocols: [http1, h2c]\n    http2: {max_control_frames_per_second: 5}\n", 1))
	req := &testgrpc.SimpleRequest{ResponseSize: 100, Payload: payload(100)}
	calls := 0
	for start := time.Now(); time.Since(start) < time.Second || calls < 50; calls++ {
		if _, err := c.UnaryCall(context.Background(), req); err != nil {
			t.Fatalf("call %d: %v", calls+1, err)
		}
	}
	if v, _ := gathered(t, tg).value("sluice_http2_limit_hits_total", map[string]string{"listener": "edge", "limit": "control_frame_flood"}); v != 0 {
		t.Fatalf("%d calls: control_frame_flood hit %v times", calls, v)
	}
	t.Logf("%d calls", calls)
}
