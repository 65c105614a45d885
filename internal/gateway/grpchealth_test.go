package gateway

import (
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"

	"sluice/internal/testutil"
)

// TestGRPCHealthCheckService: a grpc check with a service name asks grpc.health.v1 about
// that service. A grpc-go health server (google.golang.org/grpc/health) keeps the server as
// a whole SERVING throughout, so only the service's own status can move the target: it goes
// unhealthy when the service is set NOT_SERVING, with the status in the target's reason and
// the health log line, and healthy again when it is set SERVING. A second upstream asks
// about a service the server does not know: unhealthy, SERVICE_UNKNOWN.
func TestGRPCHealthCheckService(t *testing.T) {
	const svc = "grpc.testing.TestService"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	hs := health.NewServer() // "" is SERVING from the start
	hs.SetServingStatus(svc, healthgrpc.HealthCheckResponse_SERVING)
	healthgrpc.RegisterHealthServer(srv, hs)
	go srv.Serve(ln)
	defer srv.Stop()
	logs := &syncBuffer{}
	tg := startGatewayLog(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: svc
    targets: [{address: "{{backend}}"}]
    protocol: h2c
    health_check:
      active: {type: grpc, service: `+svc+`, interval: 50ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}
  - id: unknown
    targets: [{address: "{{backend}}"}]
    protocol: h2c
    health_check:
      active: {type: grpc, service: no.such.Service, interval: 50ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}
routes:
  - id: all
    upstream: svc
`, map[string]string{"backend": ln.Addr().String()}, slog.New(slog.NewTextHandler(logs, nil)))
	health := func(up string) (string, string) {
		ts, _ := adminView{tg.gw}.Targets(up)
		return ts[0].Health, ts[0].HealthReason
	}
	testutil.WaitFor(t, 3*time.Second, "healthy", func() bool { s, _ := health("svc"); return s == "healthy" })
	hs.SetServingStatus(svc, healthgrpc.HealthCheckResponse_NOT_SERVING)
	testutil.WaitFor(t, 3*time.Second, "unhealthy", func() bool { s, _ := health("svc"); return s == "unhealthy" })
	if _, why := health("svc"); !strings.Contains(why, `service "`+svc+`": NOT_SERVING`) {
		t.Errorf("reason %q; want the service and NOT_SERVING", why)
	}
	hs.SetServingStatus(svc, healthgrpc.HealthCheckResponse_SERVING)
	testutil.WaitFor(t, 3*time.Second, "healthy again", func() bool { s, _ := health("svc"); return s == "healthy" })

	testutil.WaitFor(t, 3*time.Second, "the unknown service unhealthy", func() bool { s, _ := health("unknown"); return s == "unhealthy" })
	if _, why := health("unknown"); !strings.Contains(why, `service "no.such.Service": SERVICE_UNKNOWN`) {
		t.Errorf("reason %q; want SERVICE_UNKNOWN", why)
	}
	for _, want := range []string{`NOT_SERVING`, `SERVICE_UNKNOWN`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("no health log line says %s:\n%s", want, logs.String())
		}
	}
}
