package gateway

import (
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/testutil"
	"sluice/internal/upstream/discovery/dnstest"
)

// versionedConfig routes /v to the echo upstream and stamps the config version in a header.
// Even versions add a second route, odd ones remove it, so routes come and go.
func versionedConfig(addr string, backend string, v int) string {
	extra := ""
	if v%2 == 0 {
		extra = fmt.Sprintf(`
  - id: extra-%d
    match: {path: /extra}
    upstream: echo`, v)
	}
	return fmt.Sprintf(`
listeners: [{address: %q}]
upstreams: [{id: echo, targets: [{address: %q}]}]
routes:
  - id: v
    match: {path_prefix: /v}
    upstream: echo
    rewrite: {set_headers: {X-Config-Version: "%d"}}%s
`, addr, backend, v, extra)
}

// TestReloadUnderLoad reloads 20 times (one reload invalid) while clients send requests
// without pause: no request fails, and each one is served by the config current at its
// arrival, so the versions a sequential client sees never go backwards and never include the
// invalid one.
func TestReloadUnderLoad(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Seen-Version", r.Header.Get("X-Config-Version"))
		io.WriteString(w, "ok")
	}))
	defer be.Close()
	addr := testutil.FreeAddr(t) // a free port, kept across reloads
	tg := startGateway(t, versionedConfig(addr, hostport(be), 0), nil)

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failures []string
	total := 0
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := newClient()
			last := -1
			for i := 0; i < 100000; i++ {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://" + addr + "/v")
				if err != nil {
					mu.Lock()
					total++
					failures = append(failures, err.Error())
					mu.Unlock()
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				v, _ := strconv.Atoi(resp.Header.Get("X-Seen-Version"))
				mu.Lock()
				total++
				switch {
				case resp.StatusCode != 200:
					failures = append(failures, fmt.Sprintf("status %d %s", resp.StatusCode, resp.Header.Get("X-Sluice-Error")))
				case v < last:
					failures = append(failures, fmt.Sprintf("version went back from %d to %d", last, v))
				case v == 7:
					failures = append(failures, "served by the invalid config 7")
				}
				mu.Unlock()
				last = v
			}
		}()
	}
	// served waits until n more requests have ended: each config serves some.
	served := func(n int) {
		t.Helper()
		mu.Lock()
		want := total + n
		mu.Unlock()
		testutil.WaitFor(t, 5*time.Second, fmt.Sprintf("%d requests", want), func() bool {
			mu.Lock()
			defer mu.Unlock()
			return total >= want
		})
	}
	// The listener address must stay what it is: use the bound address in later configs.
	for v := 1; v <= 20; v++ {
		served(20)
		yaml := versionedConfig(addr, hostport(be), v)
		if v == 7 {
			yaml += "\n  - id: broken\n    upstream: nowhere\n"
			if _, err := config.Parse("bad.yaml", []byte(yaml)); err == nil {
				t.Fatal("config 7 should be invalid")
			}
			continue
		}
		if err := tg.gw.Apply(mustParse(t, yaml, nil)); err != nil {
			t.Fatalf("apply %d: %v", v, err)
		}
	}
	served(20)
	close(stop)
	wg.Wait()
	if len(failures) > 0 {
		t.Fatalf("%d of %d requests failed; first: %v", len(failures), total, failures[:min(5, len(failures))])
	}
	if got := tg.gw.Current().Config.Routes[0].Rewrite.SetHeaders["X-Config-Version"]; got != "20" {
		t.Errorf("current version = %s, want 20", got)
	}
	t.Logf("%d requests across 20 reloads, 0 failed", total)
}

// TestApplyRejectsUnbindableListener keeps the old config when a new listener cannot bind,
// and closes the pool the refused config had built for a new target.
func TestApplyRejectsUnbindableListener(t *testing.T) {
	be := echoBackend(t, "a")
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	old := tg.gw.Current()
	pools := heldPools(old)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := mustParse(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}, {address: %q}]
upstreams: [{id: echo, targets: [{address: %q}]}, {id: new, targets: [{address: %q}]}]
routes: [{id: all, upstream: echo}, {id: new, match: {path: /new}, upstream: new}]
`, taken.Addr().String(), hostport(be), testutil.RefusingAddr(t)), nil)
	if err := tg.gw.Apply(bad); err == nil {
		t.Fatal("apply with an unbindable listener succeeded")
	}
	if tg.gw.Current() != old {
		t.Fatal("generation changed after a failed apply")
	}
	if got := heldPools(old); !maps.Equal(got, pools) {
		t.Errorf("after a failed apply the shared pools are %v, want %v as before", got, pools)
	}
	resp, err := http.Get(tg.url("/"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mustStatus(t, resp, 200)
}

// TestShutdownDrainsInFlight: a request in flight when shutdown starts completes.
func TestShutdownDrainsInFlight(t *testing.T) {
	started := make(chan struct{})
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		time.Sleep(300 * time.Millisecond) // in flight while Shutdown starts: the case under test
		io.WriteString(w, "finished")
	}))
	defer be.Close()
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	type result struct {
		body string
		err  error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Get(tg.url("/slow"))
		if err != nil {
			done <- result{err: err}
			return
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		done <- result{body: string(b)}
	}()
	<-started
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tg.gw.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	r := <-done
	if r.err != nil || r.body != "finished" {
		t.Fatalf("in-flight request: %q, %v", r.body, r.err)
	}
	if _, err := http.Get(tg.url("/")); err == nil {
		t.Fatal("gateway still accepts after shutdown")
	}
}

// TestShutdownClosesIdleKeepAlive: an idle client keep-alive connection does not hold up
// shutdown, whether it idles briefly or for longer.
func TestShutdownClosesIdleKeepAlive(t *testing.T) {
	be := echoBackend(t, "a")
	yaml, vars := basicConfig(hostport(be))
	for _, idle := range []time.Duration{0, 50 * time.Millisecond} {
		tg := startGateway(t, yaml, vars)
		c := newClient()
		resp, err := c.Get(tg.url("/"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		time.Sleep(idle) // the idle time under test
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		err = tg.gw.Shutdown(ctx)
		cancel()
		if err != nil || time.Since(start) > 2*time.Second {
			t.Fatalf("idle %v: shutdown took %v (err %v) with an idle keep-alive client", idle, time.Since(start), err)
		}
	}
}

// poolsConfig is one upstream "u" with the one target addr (an IP address, or a name that
// resolver resolves) and keepalive.max_idle maxIdle, routed by "all".
func poolsConfig(t *testing.T, addr, resolver string, maxIdle int) *config.Config {
	t.Helper()
	return mustParse(t, fmt.Sprintf(`
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: u
    targets: [{address: %q}]
    keepalive: {max_idle: %d}
    discovery: {resolver: %q, timeout: 1s}
routes: [{id: all, upstream: u}]
`, addr, maxIdle, resolver), nil)
}

// heldPools returns the pools the generations share, by identity, with their reference counts.
func heldPools(g *Generation) map[poolID]poolRef {
	g.pools.mu.Lock()
	defer g.pools.mu.Unlock()
	out := make(map[poolID]poolRef, len(g.pools.m))
	for id, ref := range g.pools.m {
		out[id] = *ref
	}
	return out
}

// TestPoolsAcrossBuilds: static and discovered targets keep their pool the same way. A build
// with the same target and pool settings shares the pool of the generation it replaces; one
// with changed settings gets a new pool, and the old one closes only when the last generation
// holding it is closed (the gateway closes a generation once it drained). A build that fails
// closes what it created and leaves the running generation's pools as they were.
func TestPoolsAcrossBuilds(t *testing.T) {
	dns, err := dnstest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	dns.SetA("svc.test", 60, "127.0.0.2")
	tests := []struct {
		name   string
		target string // as configured
	}{
		{name: "static", target: "127.0.0.2:8080"},
		{name: "discovered", target: "svc.test:8080"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			log := testLogger(t)
			build := func(old *Generation, maxIdle int) *Generation {
				t.Helper()
				g, err := buildNext(poolsConfig(t, tc.target, dns.Addr, maxIdle), old, log)
				if err != nil {
					t.Fatalf("build: %v", err)
				}
				t.Cleanup(g.Close)
				return g
			}
			pool := func(g *Generation) *connpool.Pool {
				t.Helper()
				ts := g.Upstreams["u"].Current().Targets
				if len(ts) != 1 || ts[0].Addr != "127.0.0.2:8080" {
					t.Fatalf("targets %v, want 127.0.0.2:8080", ts)
				}
				return ts[0].Pool
			}
			g1 := build(nil, 8)
			p1 := pool(g1)
			g2 := build(g1, 8)
			if pool(g2) != p1 {
				t.Fatal("same target and settings: the new generation has a new pool")
			}
			g3 := build(g2, 4)
			p3 := pool(g3)
			if p3 == p1 {
				t.Fatal("max_idle changed: the new generation kept the old pool")
			}
			g1.Close()
			if p1.Snapshot().Closed {
				t.Fatal("pool closed while a generation still holds it")
			}
			g2.Close()
			if s := p1.Snapshot(); !s.Closed {
				t.Fatal("old pool still open after every generation holding it closed")
			}

			held := heldPools(g3)
			bad := poolsConfig(t, tc.target, dns.Addr, 2) // a new pool, then a route that fails
			bad.Routes[0].Rewrite.PathRegex = "("
			if g, err := buildNext(bad, g3, log); err == nil {
				g.Close()
				t.Fatal("build with an invalid path_regex succeeded")
			}
			if got := heldPools(g3); !maps.Equal(got, held) {
				t.Errorf("after a failed build the shared pools are %v, want %v as before", got, held)
			}
			if p3.Snapshot().Closed || pool(g3) != p3 {
				t.Error("a failed build touched the running generation's pool")
			}
			g3.Close()
			if got := heldPools(g3); len(got) != 0 || !p3.Snapshot().Closed {
				t.Errorf("after the last generation closed: %d pools held, p3 closed %t", len(got), p3.Snapshot().Closed)
			}
		})
	}
}

const reloadPoolsConfig = `
listeners: [{address: 127.0.0.1:0}]
shutdown_grace: 10s
upstreams:
  - id: keep
    targets: [{address: "{{keep}}"}]
  - id: change
    targets: [{address: "{{change}}"}]
    keepalive: {max_idle: {{max_idle}}}
routes:
  - {id: keep, match: {path_prefix: /keep}, upstream: keep}
  - {id: change, match: {path_prefix: /change}, upstream: change}
`

// TestReloadKeepsWarmPools: through the gateway, a reload keeps the pool of a target whose
// settings did not change, with its idle connection and learned idle timeout, and replaces
// the pool of one whose settings changed; the replaced pool serves the request still running
// on the old generation and is closed once that request ended. Shutdown closes the pools
// with the reason "shutdown".
func TestReloadKeepsWarmPools(t *testing.T) {
	keepBE := testutil.AdvertisingCloser(t, 2, 2*time.Second) // the pool learns 2s
	started, finish := make(chan struct{}, 1), make(chan struct{})
	changeBE := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/change/hold" {
			started <- struct{}{}
			<-finish
		}
	}))
	defer changeBE.Close()
	vars := map[string]string{"keep": keepBE.Addr(), "change": hostport(changeBE), "max_idle": "8"}
	tg := startGateway(t, reloadPoolsConfig, vars)
	pool := func(id string) *connpool.Pool { return tg.gw.Current().Upstreams[id].Current().Targets[0].Pool }
	c := newClient()
	mustStatus(t, get(t, c, tg.url("/keep")), 200)
	keep, change := pool("keep"), pool("change")
	testutil.WaitFor(t, 2*time.Second, "the learned timeout and the warm connection", func() bool { s := keep.Snapshot(); return s.Learned == 2*time.Second && len(s.Conns) == 1 })

	held := make(chan *http.Response, 1)
	go func() { resp, _ := newClient().Get(tg.url("/change/hold")); held <- resp }()
	<-started
	vars["max_idle"] = "4"
	if err := tg.gw.Apply(mustParse(t, reloadPoolsConfig, vars)); err != nil {
		t.Fatal(err)
	}
	if pool("keep") != keep {
		t.Fatal("reload replaced the pool of a target whose settings did not change")
	}
	if pool("change") == change {
		t.Fatal("reload kept the pool of a target whose max_idle changed")
	}
	before := keep.Snapshot()
	mustStatus(t, get(t, c, tg.url("/keep")), 200)
	after := keep.Snapshot()
	if after.Counters.Opened != before.Counters.Opened || after.Counters.Reused != before.Counters.Reused+1 ||
		after.Learned != 2*time.Second {
		t.Errorf("kept pool after reload: opened %d -> %d, reused %d -> %d, learned %v; want the warm connection reused and 2s learned",
			before.Counters.Opened, after.Counters.Opened, before.Counters.Reused, after.Counters.Reused, after.Learned)
	}
	if change.Snapshot().Closed {
		t.Fatal("replaced pool closed while a request of the old generation still uses it")
	}

	close(finish)
	resp := <-held
	if resp == nil {
		t.Fatal("the request held across the reload failed")
	}
	resp.Body.Close()
	mustStatus(t, resp, 200)
	testutil.WaitFor(t, 5*time.Second, "the replaced pool to close", func() bool { return change.Snapshot().Closed })
	if n := change.Snapshot().Counters.ClosedBy[connpool.CloseConfigChange]; n != 1 {
		t.Errorf("replaced pool closed %d connections with %s, want its one", n, connpool.CloseConfigChange)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tg.gw.Shutdown(ctx)
	if s := keep.Snapshot(); !s.Closed || s.Counters.ClosedBy[connpool.CloseShutdown] != 1 {
		t.Errorf("after Shutdown: closed %t, closed_by %v; want its idle connection closed with %s",
			s.Closed, s.Counters.ClosedBy, connpool.CloseShutdown)
	}
}
