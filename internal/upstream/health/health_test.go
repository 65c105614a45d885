package health

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/upstream"

	"sluice/internal/testutil"
)

func TestHTTPProbe(t *testing.T) {
	var mu sync.Mutex
	var got *http.Request
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		got = r
		mu.Unlock()
		switch r.URL.Path {
		case "/ok":
			io.WriteString(w, "status: ready")
		case "/redirect":
			w.WriteHeader(302)
		case "/teapot":
			w.WriteHeader(418)
		case "/hints": // 103 Early Hints, then the answer (RFC 8297)
			w.Header().Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(103)
			w.WriteHeader(200)
		case "/hints-down":
			w.WriteHeader(103)
			w.WriteHeader(503)
		default:
			w.WriteHeader(503)
		}
	}))
	defer srv.Close()
	tg := &upstream.Target{Addr: strings.TrimPrefix(srv.URL, "http://")}
	tests := []struct {
		name  string
		probe HTTPProbe
		ok    bool
	}{
		{"200 default statuses", HTTPProbe{Path: "/ok"}, true},
		{"302 default statuses", HTTPProbe{Path: "/redirect"}, true},
		{"503 default statuses", HTTPProbe{Path: "/down"}, false},
		{"418 expected", HTTPProbe{Path: "/teapot", Expected: []int{418}}, true},
		{"200 not expected", HTTPProbe{Path: "/ok", Expected: []int{204}}, false},
		{"body contains", HTTPProbe{Path: "/ok", BodyContains: "ready"}, true},
		{"body lacks", HTTPProbe{Path: "/ok", BodyContains: "draining"}, false},
		// An interim answer (1xx) is not the answer: the status that follows decides.
		{"103 then 200", HTTPProbe{Path: "/hints"}, true},
		{"103 then 503", HTTPProbe{Path: "/hints-down"}, false},
		{"103 then 503, 103 expected", HTTPProbe{Path: "/hints-down", Expected: []int{103}}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := tc.probe.Check(ctx, tg)
			if (err == nil) != tc.ok {
				t.Fatalf("Check = %v, want ok=%v", err, tc.ok)
			}
		})
	}
	p := HTTPProbe{Path: "/ok", Host: "health.internal"}
	if err := p.Check(context.Background(), tg); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if got.Host != "health.internal" || got.Header.Get("Connection") != "close" {
		t.Errorf("probe sent Host %q, Connection %q", got.Host, got.Header.Get("Connection"))
	}
}

func TestProbeFailures(t *testing.T) {
	dead := testutil.RefusingAddr(t)
	ctx := context.Background()
	if err := (TCPProbe{}).Check(ctx, &upstream.Target{Addr: dead}); err == nil {
		t.Error("TCP probe of a dead port passed")
	}
	if err := (&HTTPProbe{}).Check(ctx, &upstream.Target{Addr: dead}); err == nil {
		t.Error("HTTP probe of a dead port passed")
	}
	// A listener that accepts and never answers: the timeout ends the probe.
	silent, _ := net.Listen("tcp", "127.0.0.1:0")
	defer silent.Close()
	live := &upstream.Target{Addr: silent.Addr().String()}
	if err := (TCPProbe{}).Check(ctx, live); err != nil {
		t.Errorf("TCP probe of a listening port: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	// The reason says what happened: the timeout (it said "use of closed network
	// connection", the probe's own close at its deadline).
	if err := (&HTTPProbe{}).Check(tctx, live); err == nil || !strings.Contains(err.Error(), "no answer within the check's timeout") {
		t.Errorf("HTTP probe of a silent server: %v; want a failure naming the timeout", err)
	}
	if el := time.Since(start); el > 2*time.Second {
		t.Errorf("probe timeout not honoured: %v", el)
	}
}

// scripted is a Checker whose results the test sets.
type scripted struct {
	mu   sync.Mutex
	fail bool
	n    int
}

func (s *scripted) Check(context.Context, *upstream.Target) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.n++
	if s.fail {
		return errors.New("scripted failure")
	}
	return nil
}

func (s *scripted) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

func (s *scripted) set(fail bool) {
	s.mu.Lock()
	s.fail = fail
	s.mu.Unlock()
}

// TestActiveThresholds drives the probe loop on a fake clock: 3 failures make a target
// unhealthy, 2 successes healthy again; the first probe comes within jitter × interval;
// cancelling the context stops the goroutines.
func TestActiveThresholds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &upstream.Target{Addr: "a"}
		u := &upstream.Upstream{ID: "u"}
		u.Swap([]*upstream.Target{tg}, nil)
		s := &scripted{fail: true}
		a := &Active{Upstream: u, Probe: s, Interval: time.Second, Timeout: 100 * time.Millisecond,
			HealthyThreshold: 2, UnhealthyThreshold: 3, Jitter: 0.1}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { a.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		time.Sleep(100 * time.Millisecond) // first probe within jitter × interval
		synctest.Wait()
		if n := s.count(); n != 1 {
			t.Errorf("%d probes within the first 100ms, want 1", n)
		}
		// Wait for probe counts rather than fixed times: with ±10% jitter the third probe
		// lands anywhere in [1.8s, 2.3s).
		waitProbes := func(n int) {
			for s.count() < n {
				time.Sleep(10 * time.Millisecond)
				synctest.Wait()
			}
		}
		waitProbes(3)
		if h := tg.Health(); h.State != upstream.StateUnhealthy {
			t.Fatalf("after 3 failures: %+v", h)
		}
		s.set(false)
		waitProbes(4)
		if h := tg.Health(); h.State != upstream.StateUnhealthy {
			t.Fatalf("after 1 success: %+v, want still unhealthy (threshold 2)", h)
		}
		waitProbes(5)
		if h := tg.Health(); h.State != upstream.StateHealthy {
			t.Fatalf("after 2 successes: %+v", h)
		}
	})
}

// TestPassive: consecutive failures eject, a success resets the count, and 5xx count only
// with count_5xx.
func TestPassive(t *testing.T) {
	tg := &upstream.Target{Addr: "a"}
	u := &upstream.Upstream{ID: "u"}
	u.Swap([]*upstream.Target{tg}, nil)
	no5xx := false
	p := NewPassive(u, config.PassiveCheck{ConsecutiveFailures: 3, Count5xx: &no5xx,
		BaseEjection: config.Duration(time.Minute), MaxEjection: config.Duration(time.Hour)})
	u.Passive = p
	fail := upstream.Result{Failed: true}
	u.Done(tg, fail)
	u.Done(tg, fail)
	u.Done(tg, upstream.Result{Status: 200})
	u.Done(tg, fail)
	u.Done(tg, upstream.Result{Status: 503}) // not counted (count_5xx off), resets
	u.Done(tg, fail)
	if h := tg.Health(); h.State == upstream.StateEjected || h.ConsecutiveFailures != 1 {
		t.Fatalf("after interrupted failures: %+v", h)
	}
	u.Done(tg, fail)
	u.Done(tg, fail)
	h := tg.Health()
	if h.State != upstream.StateEjected || time.Until(h.EjectedUntil) < 59*time.Second {
		t.Fatalf("after 3 failures in a row: %+v", h)
	}
	p.Count5xx = true
	tg2 := &upstream.Target{Addr: "b"}
	for range 3 {
		p.Observe(tg2, upstream.Result{Status: 502})
	}
	if tg2.Health().State != upstream.StateEjected {
		t.Fatal("backend 5xx not counted with count_5xx")
	}
}

// TestActiveFollowsSet: a target that joins the set gets probed, one that leaves is not
// probed any more.
func TestActiveFollowsSet(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		a1, b1 := &upstream.Target{Addr: "a"}, &upstream.Target{Addr: "b"}
		u := &upstream.Upstream{ID: "u"}
		u.Swap([]*upstream.Target{a1}, nil)
		var mu sync.Mutex
		probed := map[string]int{}
		probe := checkerFunc(func(_ context.Context, tg *upstream.Target) error {
			mu.Lock()
			defer mu.Unlock()
			probed[tg.Addr]++
			return nil
		})
		act := &Active{Upstream: u, Probe: probe, Interval: time.Second, Timeout: 100 * time.Millisecond}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { act.Run(ctx); close(done) }()
		defer func() { cancel(); <-done }()
		count := func(addr string) int {
			mu.Lock()
			defer mu.Unlock()
			return probed[addr]
		}
		time.Sleep(2500 * time.Millisecond) // fake clock (synctest): 2.5 probe intervals pass
		synctest.Wait()
		if count("a") == 0 || count("b") != 0 {
			t.Fatalf("before the swap: a %d, b %d probes", count("a"), count("b"))
		}
		u.Swap([]*upstream.Target{b1}, nil)
		synctest.Wait()
		na := count("a")
		time.Sleep(3 * time.Second) // fake clock: 3 more intervals
		synctest.Wait()
		if count("a") != na || count("b") == 0 {
			t.Fatalf("after the swap: a %d more, b %d probes", count("a")-na, count("b"))
		}
	})
}

type checkerFunc func(context.Context, *upstream.Target) error

func (f checkerFunc) Check(ctx context.Context, t *upstream.Target) error { return f(ctx, t) }

// TestHTTPProbeOverTLS: a target whose pool is TLS is probed over TLS with the pool's
// config, so a certificate the pool would refuse fails the probe too.
func TestHTTPProbeOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "secure")
	}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	trusted := x509.NewCertPool()
	trusted.AddCert(srv.Certificate())
	probe := &HTTPProbe{Path: "/", BodyContains: "secure"}
	ok := &upstream.Target{Addr: addr, Pool: connpool.New(addr, connpool.Options{TLS: &tls.Config{RootCAs: trusted}}, nil)}
	if err := probe.Check(context.Background(), ok); err != nil {
		t.Errorf("probe of a trusted TLS target: %v", err)
	}
	untrusted := &upstream.Target{Addr: addr, Pool: connpool.New(addr, connpool.Options{TLS: &tls.Config{RootCAs: x509.NewCertPool()}}, nil)}
	if err := probe.Check(context.Background(), untrusted); err == nil || !strings.Contains(err.Error(), "tls handshake") {
		t.Errorf("probe of an untrusted TLS target = %v, want a handshake failure", err)
	}
	plain := &upstream.Target{Addr: addr}
	if err := probe.Check(context.Background(), plain); err == nil {
		t.Error("plain HTTP probe of a TLS target succeeded")
	}
}

// TestTCPProbeOverTLS: a tcp check of a target whose pool is TLS completes the handshake
// with the pool's config: an open port whose certificate the pool would refuse, or that does
// not speak TLS at all, is a failed probe, not a healthy one.
func TestTCPProbeOverTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	trusted := x509.NewCertPool()
	trusted.AddCert(srv.Certificate())
	ok := &upstream.Target{Addr: addr, Pool: connpool.New(addr, connpool.Options{TLS: &tls.Config{RootCAs: trusted}}, nil)}
	if err := (TCPProbe{}).Check(context.Background(), ok); err != nil {
		t.Errorf("tcp probe of a trusted TLS target: %v", err)
	}
	untrusted := &upstream.Target{Addr: addr, Pool: connpool.New(addr, connpool.Options{TLS: &tls.Config{RootCAs: x509.NewCertPool()}}, nil)}
	if err := (TCPProbe{}).Check(context.Background(), untrusted); err == nil || !strings.Contains(err.Error(), "tls handshake") {
		t.Errorf("tcp probe of an untrusted TLS target = %v, want a handshake failure", err)
	}

	// A port that accepts and then says nothing: the probe's deadline ends the handshake.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	mute := &upstream.Target{Addr: ln.Addr().String(), Pool: connpool.New(ln.Addr().String(), connpool.Options{TLS: &tls.Config{RootCAs: trusted}}, nil)}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := (TCPProbe{}).Check(ctx, mute); err == nil || !strings.Contains(err.Error(), "tls handshake") {
		t.Errorf("tcp probe of a silent port under TLS = %v, want a handshake failure", err)
	}
	if err := (TCPProbe{}).Check(context.Background(), &upstream.Target{Addr: ln.Addr().String()}); err != nil {
		t.Errorf("plain tcp probe of an open port: %v", err)
	}
}

// TestTLSProbesUseConnSessions: http and tcp probes over TLS dial as the pool does
// (connpool.ConnConfig), each handshake with its own view of the pool's session cache.
func TestTLSProbesUseConnSessions(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	addr := strings.TrimPrefix(srv.URL, "https://")
	trusted := x509.NewCertPool()
	trusted.AddCert(srv.Certificate())
	cache := testutil.NewSessionViews()
	tg := &upstream.Target{Addr: addr, Pool: connpool.New(addr, connpool.Options{TLS: &tls.Config{RootCAs: trusted, ClientSessionCache: cache}}, nil)}
	if err := (&HTTPProbe{Path: "/"}).Check(context.Background(), tg); err != nil {
		t.Fatal(err)
	}
	if err := (TCPProbe{}).Check(context.Background(), tg); err != nil {
		t.Fatal(err)
	}
	if v := cache.Views(); v != 2 {
		t.Errorf("%d views of the session cache for 2 probes, want 2", v)
	}
}
