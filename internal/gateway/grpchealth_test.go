package gateway

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

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

// TestGRPCHealthCheckHost: a grpc check's host is the :authority of its call, for a backend
// that serves by authority (virtual hosts, a sidecar routing by it). The grpc-go server
// here answers the health service only for "greeter.internal" and NOT_FOUND (an unknown
// virtual host) for any other authority: the upstream whose check names that host is
// healthy, the one without host (the target's address as :authority, as before) unhealthy.
func TestGRPCHealthCheckHost(t *testing.T) {
	const vhost = "greeter.internal"
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var seen sync.Map // the authorities the server was called with
	srv := grpc.NewServer(grpc.UnaryInterceptor(func(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		md, _ := metadata.FromIncomingContext(ctx)
		a := strings.Join(md.Get(":authority"), ",")
		seen.Store(a, true)
		if a != vhost {
			return nil, status.Errorf(codes.NotFound, "no virtual host %q", a)
		}
		return h(ctx, req)
	}))
	healthgrpc.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	defer srv.Stop()
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: vhost
    targets: [{address: "{{backend}}"}]
    protocol: h2c
    health_check:
      active: {type: grpc, host: `+vhost+`, interval: 50ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}
  - id: bare
    targets: [{address: "{{backend}}"}]
    protocol: h2c
    health_check:
      active: {type: grpc, interval: 50ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}
routes:
  - id: all
    upstream: vhost
`, map[string]string{"backend": ln.Addr().String()})
	state := func(up string) (string, string) {
		ts, _ := adminView{tg.gw}.Targets(up)
		return ts[0].Health, ts[0].HealthReason
	}
	testutil.WaitFor(t, 3*time.Second, "vhost healthy, bare unhealthy", func() bool {
		v, _ := state("vhost")
		b, _ := state("bare")
		return v == "healthy" && b == "unhealthy"
	})
	if _, ok := seen.Load(ln.Addr().String()); !ok {
		t.Error("the check without host did not send the target's address as :authority")
	}
	if _, why := state("bare"); !strings.Contains(why, "no virtual host") {
		t.Errorf("bare's reason %q; want the server's NOT_FOUND message", why)
	}
}
