package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/connpool"
	"sluice/internal/testutil"
	"sluice/internal/upstream/discovery/dnstest"
)

// ipBackend is an HTTP backend on one loopback IP that counts its open connections.
type ipBackend struct {
	name  string
	ln    net.Listener
	srv   *http.Server
	open  atomic.Int64
	conns atomic.Int64 // accepted in total
	slow  atomic.Int64 // /slow requests received
}

func startIPBackend(t *testing.T, name string, ln net.Listener) *ipBackend {
	b := &ipBackend{name: name, ln: ln}
	b.srv = &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/slow" {
				b.slow.Add(1)
				// In flight for longer than the drain settle time: the duration under test.
				time.Sleep(2500 * time.Millisecond)
			}
			w.Header().Set("X-Backend", b.name)
			io.WriteString(w, b.name)
		}),
		ConnState: func(_ net.Conn, s http.ConnState) {
			switch s {
			case http.StateNew:
				b.open.Add(1)
				b.conns.Add(1)
			case http.StateClosed, http.StateHijacked:
				b.open.Add(-1)
			}
		},
	}
	go b.srv.Serve(ln)
	t.Cleanup(func() { b.srv.Close() })
	return b
}

// twoBackends starts backends on 127.0.0.2 and 127.0.0.3 with the same port (Linux routes
// all of 127.0.0.0/8 to lo), so one DNS name with a fixed port can point at either.
func twoBackends(t *testing.T) (a, b *ipBackend, port string) {
	for range 20 {
		la, err := net.Listen("tcp", "127.0.0.2:0")
		if err != nil {
			t.Skipf("no 127.0.0.2 on this host: %v", err)
		}
		_, port, _ = net.SplitHostPort(la.Addr().String())
		lb, err := net.Listen("tcp", "127.0.0.3:"+port)
		if err != nil {
			la.Close()
			continue
		}
		return startIPBackend(t, "A", la), startIPBackend(t, "B", lb), port
	}
	t.Fatal("no port free on both 127.0.0.2 and 127.0.0.3")
	return nil, nil, ""
}

const discoveryConfig = `
listeners:
  - address: 127.0.0.1:0
shutdown_grace: 5s
upstreams:
  - id: svc
    targets:
      - address: svc.test:{{port}}
    discovery:
      resolver: {{dns}}
      min_ttl: 1s
      max_ttl: 10s
      timeout: 500ms
routes:
  - id: all
    upstream: svc
`

// startDiscoveryGateway starts a gateway logging to logs (text) with discoveryConfig.
func startDiscoveryGateway(t *testing.T, dns, port string, logs *syncBuffer) (*Gateway, string, func()) {
	t.Helper()
	vars := map[string]string{"dns": dns, "port": port}
	log := slog.New(slog.NewTextHandler(logs, nil))
	gw := New(log, nil)
	cfg := mustParse(t, discoveryConfig, vars)
	off := false
	cfg.Admin.Enabled = &off
	if err := gw.Apply(cfg); err != nil {
		t.Fatalf("apply: %v", err)
	}
	var addr string
	for _, a := range gw.Addrs() {
		addr = a.String()
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
	})
	reload := func() {
		cfg := mustParse(t, discoveryConfig, vars)
		cfg.Admin.Enabled = &off
		if err := gw.Apply(cfg); err != nil {
			t.Errorf("reload: %v", err)
		}
	}
	return gw, addr, reload
}

// trafficLog records, for every response of the client loop, when it came and from which
// backend; any failure is kept.
type trafficLog struct {
	mu       sync.Mutex
	lastSeen map[string]time.Time
	count    map[string]int
	failures []string
}

func (l *trafficLog) add(backend string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.failures = append(l.failures, err.Error())
		return
	}
	l.lastSeen[backend] = time.Now()
	l.count[backend]++
}

func (l *trafficLog) seen(backend string) (time.Time, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lastSeen[backend], l.count[backend]
}

// runClients sends requests from n keep-alive clients until stop is closed.
func runClients(addr string, n int, stop <-chan struct{}, tl *trafficLog) *sync.WaitGroup {
	var wg sync.WaitGroup
	for range n {
		wg.Go(func() {
			c := newClient()
			defer c.CloseIdleConnections()
			for {
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get("http://" + addr + "/")
				if err != nil {
					tl.add("", err)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					tl.add("", fmt.Errorf("status %d (%s): %s", resp.StatusCode, resp.Header.Get("X-Sluice-Error"), body))
					continue
				}
				tl.add(resp.Header.Get("X-Backend"), nil)
				time.Sleep(2 * time.Millisecond) // pacing of the load, not synchronisation
			}
		})
	}
	return &wg
}

// TestDiscoveryFollowsDNS: a real DNS server on 127.0.0.1 answers svc.test with TTL 1s,
// first A, then A+B, then B only, while clients send requests throughout. No request may
// fail, traffic must follow each change within about 2×TTL, a request in flight on A when A
// is removed must finish, and A's connections must be closed once it drained.
func TestDiscoveryFollowsDNS(t *testing.T) {
	a, b, port := twoBackends(t)
	dns, err := dnstest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	dns.SetA("svc.test", 1, "127.0.0.2")
	logs := &syncBuffer{}
	gw, addr, reload := startDiscoveryGateway(t, dns.Addr, port, logs)

	tl := &trafficLog{lastSeen: map[string]time.Time{}, count: map[string]int{}}
	stop := make(chan struct{})
	wg := runClients(addr, 4, stop, tl)
	stopClients := sync.OnceFunc(func() { close(stop); wg.Wait() })
	defer stopClients()
	const bound = 2 * time.Second // 2 × TTL
	within := func(what string, limit time.Duration, cond func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		testutil.WaitFor(t, limit, what, cond)
		return time.Since(start)
	}

	within("traffic to A", 2*time.Second, func() bool { _, n := tl.seen("A"); return n >= 50 })
	if _, n := tl.seen("B"); n != 0 {
		t.Fatalf("B got %d requests before it was in DNS", n)
	}

	dns.SetA("svc.test", 1, "127.0.0.2", "127.0.0.3")
	el := within("B joins", 2*bound, func() bool { _, n := tl.seen("B"); return n >= 10 })
	t.Logf("B got traffic %v after DNS added it (TTL 1s)", el.Round(time.Millisecond))
	if el > bound+500*time.Millisecond {
		t.Errorf("B joined after %v, want within ~2×TTL (%v)", el, bound)
	}
	pools := targetPools(gw)
	reload() // a reload keeps the resolved set and its pools: no failures, no DNS wait
	if got := targetPools(gw); len(got) != 2 || !maps.Equal(got, pools) {
		t.Errorf("pools after reload %v, want those before it %v", got, pools)
	}
	_, nA := tl.seen("A")
	within("A still served after reload", 2*time.Second, func() bool { _, n := tl.seen("A"); return n > nA+10 })

	// Requests in flight on A while A leaves must finish. Six slow requests at once are
	// spread over A and B by round robin, so some are on A.
	slow := make(chan string, 6)
	sc := newClient()
	defer sc.CloseIdleConnections()
	for range 6 {
		go func() {
			resp, err := sc.Get("http://" + addr + "/slow")
			if err != nil {
				slow <- "error: " + err.Error()
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				slow <- fmt.Sprintf("status %d", resp.StatusCode)
				return
			}
			slow <- resp.Header.Get("X-Backend")
		}()
	}
	within("the slow requests in flight", 5*time.Second, func() bool { return a.slow.Load()+b.slow.Load() == 6 })
	removed := time.Now()
	dns.SetA("svc.test", 1, "127.0.0.3")
	within("A gone from traffic", 2*bound, func() bool {
		last, _ := tl.seen("A")
		return time.Since(last) > 500*time.Millisecond
	})
	last, _ := tl.seen("A")
	moved := max(last.Sub(removed), 0)
	t.Logf("last response from A %v after DNS removed it (TTL 1s)", moved.Round(time.Millisecond))
	if moved > bound+500*time.Millisecond {
		t.Errorf("A still served %v after removal, want within ~2×TTL (%v)", moved, bound)
	}
	onA := 0
	for range 6 {
		select {
		case got := <-slow:
			switch got {
			case "A":
				onA++
			case "B":
			default:
				t.Fatalf("slow request in flight while A was removed: %s", got)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("slow request did not finish")
		}
	}
	if onA == 0 {
		t.Fatal("no slow request was on A when it was removed")
	}
	drained := within("A's connections closed", 5*time.Second, func() bool { return a.open.Load() == 0 })
	t.Logf("%d slow requests on A finished; A's connections all closed %v later; A accepted %d in total",
		onA, drained.Round(time.Millisecond), a.conns.Load())
	// Traffic goes on, all to B: a gateway that still dialed A would do it meanwhile.
	nA0 := a.conns.Load()
	_, nB := tl.seen("B")
	// The bound is for a hang only: at a load average of 20, 400 requests took over 5 s.
	within("more traffic to B", 30*time.Second, func() bool { _, n := tl.seen("B"); return n >= nB+400 })
	if n := a.conns.Load(); n != nA0 {
		t.Errorf("A got %d new connections after it was removed", n-nA0)
	}
	if b.open.Load() == 0 {
		t.Error("B has no open connections: the pool to B is not reused")
	}

	stopClients() // every request has ended: a stuck one counts as failed
	tl.mu.Lock()
	if len(tl.failures) > 0 {
		t.Errorf("%d failed requests, first: %s", len(tl.failures), tl.failures[0])
	}
	t.Logf("requests: A %d, B %d, failed %d", tl.count["A"], tl.count["B"], len(tl.failures))
	tl.mu.Unlock()
	out := logs.String()
	for _, want := range []string{"component=discovery", "upstream=svc", "name=svc.test:" + port,
		"added=[127.0.0.3:" + port + "]", "removed=[127.0.0.2:" + port + "]", "ttl=1s"} {
		if !strings.Contains(out, want) {
			t.Errorf("discovery log lacks %q:\n%s", want, out)
		}
	}
}

// targetPools returns the pools of upstream svc's targets, by address.
func targetPools(gw *Gateway) map[string]*connpool.Pool {
	out := map[string]*connpool.Pool{}
	for _, t := range gw.Current().Upstreams["svc"].Current().Targets {
		out[t.Addr] = t.Pool
	}
	return out
}

// TestDiscoveryUnresolvedAtStart: a name that does not resolve when the config is applied
// leaves the upstream without targets (503 no_healthy_target) until it resolves.
func TestDiscoveryUnresolvedAtStart(t *testing.T) {
	a, _, port := twoBackends(t)
	dns, err := dnstest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	defer dns.Close()
	logs := &syncBuffer{}
	_, addr, _ := startDiscoveryGateway(t, dns.Addr, port, logs)
	c := newClient()
	defer c.CloseIdleConnections()
	resp, err := c.Get("http://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 503 || resp.Header.Get("X-Sluice-Error") != "no_healthy_target" {
		t.Fatalf("before the name resolves: %d %q", resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
	}
	if !strings.Contains(logs.String(), "name does not resolve") {
		t.Errorf("no warning logged:\n%s", logs.String())
	}
	dns.SetA("svc.test", 1, "127.0.0.2")
	start := time.Now()
	testutil.WaitFor(t, 5*time.Second, "a 200 from A", func() bool {
		resp, err := c.Get("http://" + addr + "/")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200 && resp.Header.Get("X-Backend") == "A"
	})
	t.Logf("served %v after the name started resolving (min_ttl 1s)", time.Since(start).Round(time.Millisecond))
	if a.conns.Load() == 0 {
		t.Error("backend A saw no connection")
	}
}
