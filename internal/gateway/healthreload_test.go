package gateway

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestReloadWithoutActiveCheckDropsVerdict: a target the active check marked unhealthy is
// available again after a reload that removes the active check. Its verdict was carried
// over (upstream.Target.Inherit) with nothing left to revise it: the target stayed out of
// rotation, "unhealthy" in the admin API, until the process restarted. An ejection (passive,
// timed) is still carried.
func TestReloadWithoutActiveCheckDropsVerdict(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(backend.Close)
	addr := backend.Listener.Addr().String()
	cfg1 := mustParse(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
upstreams:
  - id: app
    targets: [{address: %q}]
    health_check:
      panic_threshold: 0
      active: {path: /healthz, interval: 20ms, timeout: 1s, unhealthy_threshold: 1}
routes: [{id: all, upstream: app}]
`, addr), nil)
	g1, err := buildNext(cfg1, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g1.Close)
	u1 := g1.Upstreams["app"]
	testutil.WaitFor(t, 5*time.Second, "unhealthy", func() bool { return u1.Current().Targets[0].Health().State == "unhealthy" })

	for _, tc := range []struct {
		name, check string
		want        string
	}{
		{"active check removed", `{panic_threshold: 0}`, "unknown"},
		{"passive only", `{panic_threshold: 0, passive: {consecutive_failures: 3}}`, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg2 := mustParse(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
upstreams:
  - id: app
    targets: [{address: %q}]
    health_check: %s
routes: [{id: all, upstream: app}]
`, addr, tc.check), nil)
			g2, err := buildNext(cfg2, g1, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer g2.Close()
			u2 := g2.Upstreams["app"]
			tg := u2.Current().Targets[0]
			if h := tg.Health(); string(h.State) != tc.want {
				t.Errorf("after the reload: %+v, want %s", h, tc.want)
			}
			if got := u2.Pick(nil, nil); got != tg {
				t.Errorf("pick = %v, want the target: no active check is left to mark it down", got)
			}
		})
	}
}

// h2PassiveYAML: one h2c target, ejected after 2 failures in a row, no panic mode.
const h2PassiveYAML = `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: h2
    targets: [{address: "{{backend}}"}]
    protocol: h2c
    health_check: {panic_threshold: 0, passive: {consecutive_failures: 2}}
routes: [{id: all, upstream: h2}]
`

// TestH2UnprocessedNotTargetFailure: HTTP/2 streams the backend provably did not process
// (REFUSED_STREAM: its stream limit, a load shed) say nothing of the target's health, as for
// the gRPC health check, and are not passive-health failures. Each counted: a request whose
// two refused streams were followed by a processed one on a new connection ejected the
// healthy target (consecutive_failures 2), and the next request got 503 no_healthy_target.
// A refused connect still is one (the last part).
func TestH2UnprocessedNotTargetFailure(t *testing.T) {
	b, err := testutil.NewRacyH2(testutil.RacyH2Options{RefusePercent: 100})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tg := startGateway(t, h2PassiveYAML, map[string]string{"backend": b.Addr()})
	for i := range 4 {
		req, _ := http.NewRequest("GET", tg.url("/"), nil)
		req.Header.Set("X-Test-Id", fmt.Sprint(i))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("request %d: status %d %q; want 200 (refused %d streams so far)", i, resp.StatusCode, body, b.Refused.Load())
		}
	}
	if b.Refused.Load() < 2 {
		t.Fatalf("the backend refused %d streams; the test needs some", b.Refused.Load())
	}
	ts, _ := adminView{tg.gw}.Targets("h2")
	if ts[0].Health == "ejected" {
		t.Errorf("target %s (%s) after refused streams; want it not ejected", ts[0].Health, ts[0].HealthReason)
	}

	down := startGateway(t, h2PassiveYAML, map[string]string{"backend": testutil.RefusingAddr(t)})
	resp, err := http.Get(down.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ts, _ = adminView{down.gw}.Targets("h2")
	if ts[0].Health != "ejected" {
		t.Errorf("target %s (%s) after refused connects; want it ejected", ts[0].Health, ts[0].HealthReason)
	}
}

// TestH2FullPoolNotTargetFailure: requests that waited for a connection or stream of a full
// pool (max_conns 1, taken by a long response: on HTTP/2 the backend's one stream) until
// their time ran out answer 503 pool_queue_timeout, and are not passive-health failures of
// the target, on HTTP/2 as on HTTP/1.1: the target is busy, not failing. Counted, two of
// them ejected it, and the request after the long one ended got 503 no_healthy_target.
func TestH2FullPoolNotTargetFailure(t *testing.T) {
	for _, tc := range []struct{ name, upstream string }{
		{name: "h2c", upstream: "protocol: h2c\n    h2: {max_conns: 1, max_draining: 0}"},
		{name: "http1", upstream: "keepalive: {max_conns: 1, queue_timeout: 300ms}"},
	} {
		t.Run(tc.name, func(t *testing.T) { testFullPoolNotTargetFailure(t, tc.upstream) })
	}
}

func testFullPoolNotTargetFailure(t *testing.T, upstream string) {
	release := make(chan struct{})
	var once sync.Once
	stop := func() { once.Do(func() { close(release) }) }
	defer stop()
	held := make(chan struct{}, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/hold" {
			return
		}
		held <- struct{}{}
		for {
			w.Write([]byte("."))
			w.(http.Flusher).Flush()
			select {
			case <-release:
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
	backend := httptest.NewUnstartedServer(h)
	backend.Config.Protocols = new(http.Protocols)
	backend.Config.Protocols.SetHTTP1(true)
	backend.Config.Protocols.SetUnencryptedHTTP2(true)
	backend.Config.HTTP2 = &http.HTTP2Config{MaxConcurrentStreams: 1}
	backend.Start()
	t.Cleanup(backend.Close)
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: up
    targets: [{address: "{{backend}}"}]
    {{upstream}}
    timeouts: {read: 300ms}
    health_check: {panic_threshold: 0, passive: {consecutive_failures: 2}}
routes: [{id: all, upstream: up}]
`, map[string]string{"backend": backend.Listener.Addr().String(), "upstream": upstream})
	get := func(path string) (int, string) {
		resp, err := http.Get(tg.url(path))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/"); code != 200 {
		t.Fatalf("first request: %d %s", code, body)
	}
	holdDone := make(chan struct{})
	go func() { defer close(holdDone); get("/hold") }()
	<-held
	for i := range 3 {
		if code, body := get("/"); code != 503 || !strings.Contains(body, "pool_queue_timeout") {
			t.Fatalf("request %d beside the long one: %d %s; want 503 pool_queue_timeout", i, code, body)
		}
	}
	stop()
	<-holdDone
	if code, body := get("/"); code != 200 {
		t.Errorf("after the long request: %d %s; want 200 (the target not ejected)", code, body)
	}
}

// TestReloadStopsOldActiveChecks: a reload stops the replaced generation's active checks at
// once, not when its last request ended. They ran on while the old generation drained (up
// to shutdown_grace, while any request of it ran): each reload during a long request added
// a prober per target, and a reload that changed the check (a new path, a fixed certificate)
// kept the old check probing, and logging transitions, beside the new one. Each check here
// has its own path: the old one's must stop arriving while the old generation is held.
func TestReloadStopsOldActiveChecks(t *testing.T) {
	var mu sync.Mutex
	probes := map[string]int64{}
	backend := httptest.NewServer(http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
		mu.Lock()
		probes[r.URL.Path]++
		mu.Unlock()
	}))
	t.Cleanup(backend.Close)
	count := func(path string) int64 {
		mu.Lock()
		defer mu.Unlock()
		return probes[path]
	}
	yaml := `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: app
    targets: [{address: "{{backend}}"}]
    health_check: {active: {path: {{path}}, interval: 20ms, timeout: 1s}}
routes: [{id: all, upstream: app}]
`
	vars := map[string]string{"backend": backend.Listener.Addr().String(), "path": "/a"}
	tg := startGateway(t, yaml, vars)
	testutil.WaitFor(t, 5*time.Second, "probes of /a", func() bool { return count("/a") > 0 })
	for _, path := range []string{"/b", "/c"} {
		prev := vars["path"]
		old := tg.gw.cur.Load()
		old.inflight.Add(1) // a long request holds it
		defer old.inflight.Add(-1)
		vars["path"] = path
		if err := tg.gw.Apply(mustParse(t, yaml, vars)); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 5*time.Second, "probes of "+path, func() bool { return count(path) > 0 })
		testutil.WaitStill(t, 5*time.Second, "no more probes of "+prev, func() int64 { return count(prev) })
	}
}

// TestReloadFixesTLSOfGRPCCheck: a gRPC check that fails on the upstream's TLS settings (the
// wrong CA) names the certificate error; a reload with the right CA checks with it (the
// target's new HTTP/2 pool) and the target comes back, its old checks gone.
func TestReloadFixesTLSOfGRPCCheck(t *testing.T) {
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	addr := tlsHealthServer(t, ca)
	yaml := `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: auto
    targets: [{address: "{{backend}}"}]
    protocol: h2
    tls: {ca_file: {{ca}}, server_name: 127.0.0.1}
    health_check:
      active: {type: grpc, interval: 20ms, timeout: 1s, healthy_threshold: 2, unhealthy_threshold: 1}
routes: [{id: all, upstream: auto}]
`
	vars := map[string]string{"backend": addr, "ca": other.CAFile(t)}
	tg := startGateway(t, yaml, vars)
	testutil.WaitFor(t, 5*time.Second, "unhealthy", func() bool { return strings.HasPrefix(targetHealth(tg)[addr], "unhealthy") })
	if h := targetHealth(tg)[addr]; !strings.Contains(h, "certificate signed by unknown authority") {
		t.Errorf("health %q; want the certificate error", h)
	}
	vars["ca"] = ca.CAFile(t)
	if err := tg.gw.Apply(mustParse(t, yaml, vars)); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "healthy after the reload", func() bool { return strings.HasPrefix(targetHealth(tg)[addr], "healthy") })
}
