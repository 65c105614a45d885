package gateway

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// killable is a backend that can be killed (listener closed, idle keep-alive connections
// reset with RST, requests in progress allowed to finish and then closed) and restarted on
// the same address, like a process crash between requests followed by a restart.
type killable struct {
	name string
	addr string
	hits atomic.Int64

	mu    sync.Mutex
	ln    net.Listener
	srv   *http.Server
	conns map[net.Conn]http.ConnState
}

func newKillable(t *testing.T, name string) *killable {
	k := &killable{name: name, conns: map[net.Conn]http.ConnState{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	k.addr = ln.Addr().String()
	k.serve(ln)
	t.Cleanup(k.kill)
	return k
}

func (k *killable) serve(ln net.Listener) {
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/healthz" {
				k.hits.Add(1)
			}
			w.Header().Set("X-Backend", k.name)
			io.WriteString(w, "ok")
		}),
		ConnState: func(c net.Conn, s http.ConnState) {
			k.mu.Lock()
			defer k.mu.Unlock()
			if s == http.StateClosed || s == http.StateHijacked {
				delete(k.conns, c)
			} else {
				k.conns[c] = s
			}
		},
	}
	k.mu.Lock()
	k.ln, k.srv = ln, srv
	k.mu.Unlock()
	go srv.Serve(ln)
}

func (k *killable) kill() {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.ln == nil {
		return
	}
	k.srv.SetKeepAlivesEnabled(false) // requests in progress finish, then their conns close
	k.ln.Close()
	k.ln = nil
	for c, s := range k.conns {
		if s == http.StateIdle {
			if tc, ok := c.(*net.TCPConn); ok {
				tc.SetLinger(0)
			}
			c.Close()
		}
	}
}

func (k *killable) restart(t *testing.T) {
	var ln net.Listener
	var err error
	for range 100 { // bounded: the port may take a moment to be free again
		if ln, err = net.Listen("tcp", k.addr); err == nil {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("restart %s: %v", k.name, err)
	}
	k.serve(ln)
}

// TestFailoverKillAndRestart kills one of three targets under a steady load of GETs and
// restarts it later. No request may fail (connect failures go to another target, resets on
// reused connections are retried once); the target must be taken out (passive ejection or
// active check) and brought back (active check), and the times are logged.
func TestFailoverKillAndRestart(t *testing.T) {
	bes := []*killable{newKillable(t, "a"), newKillable(t, "b"), newKillable(t, "c")}
	tg := startGateway(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
upstreams:
  - id: echo
    targets: [{address: %q}, {address: %q}, {address: %q}]
    balancer: {policy: round_robin, slow_start: 500ms}
    health_check:
      active: {path: /healthz, interval: 100ms, timeout: 500ms, healthy_threshold: 2, unhealthy_threshold: 2}
      passive: {consecutive_failures: 3, base_ejection: 1s, max_ejection: 5s}
routes: [{id: all, upstream: echo}]
`, bes[0].addr, bes[1].addr, bes[2].addr), nil)
	t.Cleanup(func() { tg.gw.Current().Close() }) // until Shutdown calls it (see report)
	victim := tg.gw.Current().Upstreams["echo"].Current().Targets[0]

	var total, failed atomic.Int64
	var failMu sync.Mutex
	var failures []string
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			c := newClient()
			for i := 0; i < 20000; i++ { // bounded; the test stops the loop much earlier
				select {
				case <-stop:
					return
				default:
				}
				resp, err := c.Get(tg.url("/load"))
				total.Add(1)
				if err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
					failMu.Lock()
					if err != nil {
						failures = append(failures, err.Error())
					} else {
						failures = append(failures, fmt.Sprintf("%d %s", resp.StatusCode, resp.Header.Get("X-Sluice-Error")))
					}
					failMu.Unlock()
				}
			}
		})
	}
	var stopOnce sync.Once
	stopLoad := func() { stopOnce.Do(func() { close(stop) }); wg.Wait() }
	defer stopLoad()

	testutil.WaitFor(t, 5*time.Second, "load on every target", func() bool { return bes[0].hits.Load() >= 50 && total.Load() >= 200 })
	killed := time.Now()
	bes[0].kill()
	testutil.WaitFor(t, 10*time.Second, "the killed target to be taken out", func() bool { s := victim.Health().State; return s == "ejected" || s == "unhealthy" })
	outAfter := time.Since(killed)
	h := victim.Health()
	// The active check marks it unhealthy too; Health shows that once the ejection ends.
	testutil.WaitFor(t, 10*time.Second, "the killed target to be unhealthy", func() bool { return victim.Health().State == "unhealthy" })
	unhealthyAfter := time.Since(killed)
	reqsWhileDead := total.Load()
	testutil.WaitFor(t, 5*time.Second, "200 requests while the target is dead", func() bool { return total.Load() >= reqsWhileDead+200 })

	hitsBefore := bes[0].hits.Load()
	restarted := time.Now()
	bes[0].restart(t)
	testutil.WaitFor(t, 10*time.Second, "the restarted target to be healthy", func() bool { return victim.Health().State == "healthy" })
	healthyAfter := time.Since(restarted)
	testutil.WaitFor(t, 10*time.Second, "traffic to the restarted target", func() bool { return bes[0].hits.Load() > hitsBefore+20 })
	trafficAfter := time.Since(restarted)

	stopLoad()
	t.Logf("failover: %d GETs, %d failed; killed target out after %v (%s: %s), unhealthy after %v; "+
		"restarted target healthy after %v, back to >20 requests after %v (slow start 500ms)",
		total.Load(), failed.Load(), outAfter.Round(time.Millisecond), h.State, h.Reason,
		unhealthyAfter.Round(time.Millisecond), healthyAfter.Round(time.Millisecond), trafficAfter.Round(time.Millisecond))
	if failed.Load() != 0 {
		t.Errorf("%d of %d GETs failed: %v", failed.Load(), total.Load(), failures)
	}
}
