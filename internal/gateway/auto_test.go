package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthgrpc "google.golang.org/grpc/health/grpc_health_v1"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"

	"sluice/internal/testutil"
)

// alpnBackend is a TLS net/http backend on 127.0.0.1 whose ALPN offer (the protocols it
// serves) is chosen at each (re)start on the same address. It answers "ok <id> <proto major>"
// and counts, per X-Test-Id, how often it ran the request and with which protocol.
type alpnBackend struct {
	t    *testing.T
	addr string
	tls  *tls.Config

	mu    sync.Mutex
	srv   *http.Server
	runs  map[string]int
	proto map[string]int // the request's ProtoMajor, per id
	conns atomic.Int64   // TLS connections accepted, all starts together
}

func newALPNBackend(t *testing.T, ca *testutil.CA, h1, h2 bool) *alpnBackend {
	b := &alpnBackend{t: t, tls: ca.ServerConfig(t, "127.0.0.1"), runs: map[string]int{}, proto: map[string]int{}}
	b.start(h1, h2)
	t.Cleanup(b.stop)
	return b
}

// start serves on b.addr (a new port the first time) with the given protocols.
func (b *alpnBackend) start(h1, h2 bool) {
	b.t.Helper()
	addr := b.addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	var ln net.Listener
	var err error
	for range 50 { // the port of the server just stopped may take a moment to free
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		b.t.Fatal(err)
	}
	b.addr = ln.Addr().String()
	cfg := b.tls.Clone()
	if !h1 {
		// Strictly h2: Go's server would otherwise complete a handshake that offered only
		// "http/1.1" without ALPN (its http/1.1 fallback), where other servers refuse it.
		cfg.GetConfigForClient = func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			if !slices.Contains(h.SupportedProtos, "h2") {
				return nil, errors.New("this backend speaks only h2")
			}
			return nil, nil
		}
	}
	var p http.Protocols
	p.SetHTTP1(h1)
	p.SetHTTP2(h2)
	srv := &http.Server{Handler: http.HandlerFunc(b.serve), TLSConfig: cfg, Protocols: &p,
		ConnState: func(_ net.Conn, s http.ConnState) {
			if s == http.StateNew {
				b.conns.Add(1)
			}
		}, ErrorLog: nil}
	b.mu.Lock()
	b.srv = srv
	b.mu.Unlock()
	go srv.ServeTLS(ln, "", "")
}

// stop shuts the server down as a redeploy would: GOAWAY on HTTP/2 connections, idle
// HTTP/1.1 connections closed, requests in flight finished.
func (b *alpnBackend) stop() {
	b.mu.Lock()
	srv := b.srv
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
}

func (b *alpnBackend) serve(w http.ResponseWriter, r *http.Request) {
	id := r.Header.Get("X-Test-Id")
	body, _ := io.ReadAll(r.Body)
	if r.Method == "POST" && string(body) != "body-"+id {
		http.Error(w, "bad body", 400)
		return
	}
	b.mu.Lock()
	b.runs[id]++
	b.proto[id] = r.ProtoMajor
	b.mu.Unlock()
	fmt.Fprintf(w, "ok %s %d", id, r.ProtoMajor)
}

func (b *alpnBackend) seen(id string) (runs, proto int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.runs[id], b.proto[id]
}

// autoGateway starts a gateway with one protocol auto upstream whose target is addr.
func autoGateway(t *testing.T, ca *testutil.CA, addr string, log *slog.Logger) *testGateway {
	t.Helper()
	return startGatewayLog(t, `
listeners:
  - address: 127.0.0.1:0
    protocols: [http1, h2c]
upstreams:
  - id: auto
    targets: [{address: "{{backend}}"}]
    protocol: auto
    tls: {ca_file: {{ca}}, server_name: 127.0.0.1}
routes:
  - id: all
    upstream: auto
admin:
  address: 127.0.0.1:0
`, map[string]string{"backend": addr, "ca": ca.CAFile(t)}, log)
}

// autoSend sends one request through the gateway and checks that it succeeded, that the
// backend ran it exactly once, and over HTTP/wantProto.
func autoSend(t *testing.T, c *http.Client, tg *testGateway, b *alpnBackend, id string, post bool, wantProto int) {
	t.Helper()
	var body io.Reader
	method := "GET"
	if post {
		method, body = "POST", strings.NewReader("body-"+id)
	}
	req, _ := http.NewRequest(method, tg.url("/r"), body)
	req.Header.Set("X-Test-Id", id)
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, id, err)
		return
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(got) != fmt.Sprintf("ok %s %d", id, wantProto) {
		t.Errorf("%s %s: %d %q (%s); want 200 over HTTP/%d", method, id, resp.StatusCode, got, resp.Header.Get("X-Sluice-Error"), wantProto)
	}
	if runs, proto := b.seen(id); runs != 1 || proto != wantProto {
		t.Errorf("%s %s: the backend ran it %d times, over HTTP/%d; want once over HTTP/%d", method, id, runs, proto, wantProto)
	}
}

// autoProtocol is the protocol the admin API's target view shows.
func autoProtocol(tg *testGateway) string {
	ts, _ := adminView{tg.gw}.Targets("auto")
	if len(ts) != 1 || ts[0].H2 == nil {
		return "no h2 pool"
	}
	return ts[0].H2.Negotiated
}

// TestAutoProtocol: protocol auto against a backend offering h2 and http/1.1 (h2 chosen),
// one offering only http/1.1 and one offering only h2. Every request succeeds over the
// protocol the backend chose, runs once, and the first one's connection is not wasted: a
// sequential client costs the backend one connection whichever pool dialed it (the HTTP/2
// pool dials first, and hands an http/1.1 answer to the HTTP/1.1 pool). Then a concurrent
// GET/POST mix. The admin view and the metrics show the negotiated protocol.
func TestAutoProtocol(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, tc := range []struct {
		name   string
		h1, h2 bool
		proto  int
		alpn   string
	}{
		{"h2+http1", true, true, 2, "h2"},
		{"http1-only", true, false, 1, "http/1.1"},
		{"h2-only", false, true, 2, "h2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newALPNBackend(t, ca, tc.h1, tc.h2)
			tg := autoGateway(t, ca, b.addr, testLogger(t))
			c := newClient()
			for i := range 6 {
				autoSend(t, c, tg, b, fmt.Sprintf("seq-%d", i), i%2 == 0, tc.proto)
			}
			if n := b.conns.Load(); n != 1 {
				t.Errorf("sequential requests opened %d backend connections; want 1 (the first dial's connection reused, whichever pool made it)", n)
			}
			var wg sync.WaitGroup
			for w := range 6 {
				wg.Go(func() {
					for i := range 10 {
						autoSend(t, c, tg, b, fmt.Sprintf("mix-%d-%d", w, i), i%2 == 0, tc.proto)
					}
				})
			}
			wg.Wait()
			if got := autoProtocol(tg); got != tc.alpn {
				t.Errorf("admin h2.negotiated = %q; want %q", got, tc.alpn)
			}
			var v struct {
				Upstreams []struct {
					Targets []struct{ Protocol string } `json:"targets"`
				} `json:"upstreams"`
			}
			adminGet(t, tg.adminURL(""), "/admin/upstreams", "", &v)
			if len(v.Upstreams) != 1 || len(v.Upstreams[0].Targets) != 1 || v.Upstreams[0].Targets[0].Protocol != tc.alpn {
				t.Errorf("admin /admin/upstreams: %+v; want the target's protocol %q", v, tc.alpn)
			}
			_, m := scrape(t, tg.adminURL("/metrics"))
			if want := fmt.Sprintf(`sluice_upstream_negotiated_protocol{protocol=%q,target=%q,upstream="auto"} 1`, tc.alpn, b.addr); !strings.Contains(m, want) {
				t.Errorf("metrics lack %s", want)
			}
		})
	}
}

// TestAutoProtocolSwitch: the backend is redeployed on the same address with another ALPN
// offer, h2 -> http/1.1 only -> h2 only -> h2 and http/1.1, with the gateway's pools full
// of the old protocol's connections. The first request after each restart (a POST, the kind
// that must never run twice) succeeds over the new protocol on the one connection the switch
// dialed, whichever pool dialed it; then concurrent POSTs and a GET/POST mix all succeed,
// each run once; the change is logged with the old and new protocol and counted.
func TestAutoProtocolSwitch(t *testing.T) {
	ca := testutil.NewCA(t)
	b := newALPNBackend(t, ca, true, true)
	logs := &syncBuffer{}
	tg := autoGateway(t, ca, b.addr, slog.New(slog.NewTextHandler(logs, nil)))
	c := newClient()
	phases := []struct {
		h1, h2 bool
		proto  int
	}{{true, true, 2}, {true, false, 1}, {false, true, 2}, {true, false, 1}, {true, true, 2}}
	for p, ph := range phases {
		if p > 0 {
			b.stop()
			b.start(ph.h1, ph.h2)
		}
		// One POST alone first: the dial that finds the new answer was made by the pool of
		// the old protocol, and its connection is the one that serves the request (handed
		// over, not wasted).
		before := b.conns.Load()
		start := time.Now()
		autoSend(t, c, tg, b, fmt.Sprintf("p%d-alone", p), true, ph.proto)
		t.Logf("phase %d (HTTP/%d): first request %v", p, ph.proto, time.Since(start))
		if n := b.conns.Load() - before; n != 1 {
			t.Errorf("phase %d: the first request after the restart opened %d backend connections; want 1", p, n)
		}
		var wg sync.WaitGroup
		for w := range 8 {
			wg.Go(func() { autoSend(t, c, tg, b, fmt.Sprintf("p%d-first-%d", p, w), true, ph.proto) })
		}
		wg.Wait()
		for i := range 4 {
			autoSend(t, c, tg, b, fmt.Sprintf("p%d-then-%d", p, i), i%2 == 0, ph.proto)
		}
	}
	for _, want := range []string{
		`msg="upstream target protocol learned (ALPN)"` + ` component=gateway upstream=auto component=h2pool target=` + b.addr + ` protocol=h2`,
		`msg="upstream target protocol changed (ALPN)"` + ` component=gateway upstream=auto component=h2pool target=` + b.addr + ` old=h2 new=http/1.1`,
		`msg="upstream target protocol changed (ALPN)"` + ` component=gateway upstream=auto component=h2pool target=` + b.addr + ` old=http/1.1 new=h2`,
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("log lacks %s\n%s", want, logs)
		}
	}
	// A switch is not an attempt: no request took a second one (a retry would have hidden a
	// switch that failed its first try).
	for _, l := range tg.accessLines(len(phases) * 13) {
		if l["attempts"] != 1.0 {
			t.Errorf("access log: %v %v took %v attempts; want 1", l["method"], l["status"], l["attempts"])
		}
	}
	ts, _ := adminView{tg.gw}.Targets("auto")
	if n := ts[0].H2.Counters.ProtocolChanges; n != int64(len(phases)) {
		t.Errorf("protocol changes = %d; want %d (the first answer and %d changes)", n, len(phases), len(phases)-1)
	}
}

// TestAutoGRPC: a gRPC call (h2c in front) to a protocol auto upstream works when the target
// chose h2 (a grpc-go server over TLS), and when the target chose HTTP/1.1 it fails with
// UNAVAILABLE and the reason upstream_h2_unavailable, never reaching the backend.
func TestAutoGRPC(t *testing.T) {
	ca := testutil.NewCA(t)
	t.Run("h2 target", func(t *testing.T) {
		tg := autoGateway(t, ca, grpcServe(t, &grpcBackend{done: make(chan error, 4)}, grpcTLS(t, ca)), testLogger(t))
		resp, err := grpcClient(t, tg).UnaryCall(context.Background(), &testgrpc.SimpleRequest{ResponseSize: 10})
		if err != nil || len(resp.GetPayload().GetBody()) != 10 {
			t.Fatalf("UnaryCall: %v, %v", resp, err)
		}
	})
	t.Run("http/1.1 target", func(t *testing.T) {
		b := newALPNBackend(t, ca, true, false)
		tg := autoGateway(t, ca, b.addr, testLogger(t))
		// An HTTP/1.1 request first, so that the target's answer is known; then a gRPC call
		// within and one after the re-probe interval.
		autoSend(t, newClient(), tg, b, "h1", false, 1)
		gc := grpcClient(t, tg)
		for i, wantConns := range []int64{1, 2} {
			if i > 0 {
				time.Sleep(1100 * time.Millisecond) // past h2pool.DefaultReprobeInterval
			}
			_, err := gc.UnaryCall(context.Background(), &testgrpc.SimpleRequest{})
			if st := status.Convert(err); st.Code() != codes.Unavailable || !strings.Contains(st.Message(), "upstream_h2_unavailable") {
				t.Errorf("status %v %q; want Unavailable with upstream_h2_unavailable", st.Code(), st.Message())
			}
			// Within the re-probe interval the answer is known and nothing is dialed; after
			// it, the call asks the target again (one connection, kept by the HTTP/1.1 pool).
			if n := b.conns.Load(); n != wantConns {
				t.Errorf("call %d: the backend accepted %d connections in all; want %d", i, n, wantConns)
			}
		}
		b.mu.Lock()
		n := len(b.runs)
		b.mu.Unlock()
		if n != 1 {
			t.Errorf("the backend ran %d distinct requests; want 1 (the gRPC calls must not reach it)", n)
		}
	})
}

func grpcClient(t *testing.T, tg *testGateway) testgrpc.TestServiceClient {
	cc, err := grpc.NewClient(tg.addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return testgrpc.NewTestServiceClient(cc)
}

// TestAutoGRPCHealthCheck: grpc health checks are allowed with protocol auto and need h2 at
// check time: a grpc-go health server over TLS (h2 chosen) is healthy; a target that chose
// HTTP/1.1 is unhealthy, its reason saying so.
func TestAutoGRPCHealthCheck(t *testing.T) {
	ca := testutil.NewCA(t)
	addr := tlsHealthServer(t, ca)
	h1 := newALPNBackend(t, ca, true, false)
	tg := autoCheckGateway(t, ca, "grpc", addr, h1.addr)
	health := func() map[string]string { return targetHealth(tg) }
	testutil.WaitFor(t, 3*time.Second, "grpc target healthy, http/1.1 one unhealthy", func() bool {
		h := health()
		return strings.HasPrefix(h[addr], "healthy") && strings.HasPrefix(h[h1.addr], "unhealthy")
	})
	if r := health()[h1.addr]; !strings.Contains(r, "HTTP/1.1") {
		t.Errorf("http/1.1 target's health %q; want a reason naming HTTP/1.1", r)
	}
}

// tlsHealthServer starts a grpc-go server over TLS (a certificate of ca for 127.0.0.1) that
// serves the health service, SERVING, and returns its address.
func tlsHealthServer(t *testing.T, ca *testutil.CA) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.Creds(credentials.NewTLS(ca.ServerConfig(t, "127.0.0.1"))))
	healthgrpc.RegisterHealthServer(srv, health.NewServer())
	go srv.Serve(ln)
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

// TestAutoTCPHealthCheck: a tcp check of a protocol auto upstream completes the TLS handshake
// with a backend that serves only h2 (it offers "h2" too) and with one that serves only
// HTTP/1.1: both healthy.
func TestAutoTCPHealthCheck(t *testing.T) {
	ca := testutil.NewCA(t)
	h2 := newALPNBackend(t, ca, false, true)
	h1 := newALPNBackend(t, ca, true, false)
	tg := autoCheckGateway(t, ca, "tcp", h2.addr, h1.addr)
	var last map[string]string
	testutil.WaitFor(t, 3*time.Second, "both targets healthy", func() bool {
		last = targetHealth(tg)
		ok := true
		for _, h := range last {
			ok = ok && strings.HasPrefix(h, "healthy")
		}
		return ok && len(last) == 2
	})
	t.Logf("targets: %v", last)
}

// autoCheckGateway starts a gateway whose protocol auto upstream has targets a and b, checked
// actively with check (grpc or tcp) every 50 ms, one result deciding.
func autoCheckGateway(t *testing.T, ca *testutil.CA, check, a, b string) *testGateway {
	t.Helper()
	return startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: auto
    targets: [{address: "{{a}}"}, {address: "{{b}}"}]
    protocol: auto
    tls: {ca_file: {{ca}}, server_name: 127.0.0.1}
    health_check:
      active: {type: {{check}}, interval: 50ms, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 1}
routes:
  - id: all
    upstream: auto
`, map[string]string{"a": a, "b": b, "check": check, "ca": ca.CAFile(t)})
}

// targetHealth maps each target of the upstream "auto" to its health and reason.
func targetHealth(tg *testGateway) map[string]string {
	ts, _ := adminView{tg.gw}.Targets("auto")
	m := map[string]string{}
	for _, x := range ts {
		m[x.Address] = x.Health + " " + x.HealthReason
	}
	return m
}
