package probe

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// tolerance is the documented accuracy of the idle measurement (docs/probe.md): the
// larger of 20% and 250ms.
func tolerance(want time.Duration) time.Duration {
	return max(want/5, 250*time.Millisecond)
}

// goBackend starts a net/http server on 127.0.0.1:0 and returns its address.
func goBackend(t *testing.T, idle time.Duration, keepAlives bool) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler:     http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) }),
		IdleTimeout: idle,
	}
	srv.SetKeepAlivesEnabled(keepAlives)
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String()
}

// backendCase is one backend with known keep-alive behaviour and what the probe must find.
type backendCase struct {
	name       string
	addr       func(t *testing.T, tc *backendCase) string // may adjust tc.idle
	maxWait    time.Duration
	keepsAlive bool
	idle       time.Duration // 0: no close expected within maxWait
	limit      int           // 0: none expected
	signalled  bool
}

func runCase(t *testing.T, tc backendCase) {
	t.Helper()
	addr := tc.addr(t, &tc)
	start := time.Now()
	r, err := Probe(context.Background(), addr, Options{MaxWait: tc.maxWait})
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	took := time.Since(start)
	var report strings.Builder
	WriteText(&report, r, Recommend(r, 0.85), 0.85)
	t.Logf("took %s\n%s", took, report.String())
	if r.KeepsAlive != tc.keepsAlive {
		t.Fatalf("KeepsAlive = %v, want %v (%s)", r.KeepsAlive, tc.keepsAlive, r.NoKeepAlive)
	}
	if !tc.keepsAlive {
		if r.Idle != nil || r.Limit != nil {
			t.Errorf("measured a backend without keep-alive: %+v %+v", r.Idle, r.Limit)
		}
		if rec := Recommend(r, 0.85); rec.Enabled {
			t.Errorf("recommendation keeps keep-alive on: %+v", rec)
		}
		return
	}
	checkIdle(t, r.Idle, tc)
	checkLimit(t, r.Limit, tc)
	// Roughly the timeout plus a little: the check request and the slack for late closes.
	bound := tc.maxWait + time.Second
	if tc.idle > 0 {
		bound = tc.idle + tc.idle/2 + time.Second
	}
	if took > bound {
		t.Errorf("probe took %s, want under %s", took, bound)
	}
}

func checkIdle(t *testing.T, ir *IdleResult, tc backendCase) {
	t.Helper()
	if tc.idle == 0 {
		if ir.Observed {
			t.Errorf("idle close observed at %s, want none within %s", ir.Timeout.D(), tc.maxWait)
		}
		return
	}
	if !ir.Observed {
		t.Fatalf("no idle close observed, want %s", tc.idle)
	}
	got, tol := ir.Timeout.D(), tolerance(tc.idle)
	if got < tc.idle-tol || got > tc.idle+tol {
		t.Errorf("idle timeout = %s, want %s ± %s", got, tc.idle, tol)
	}
	switch {
	case ir.CheckAge <= 0:
		t.Errorf("no check below the timeout was sent")
	case !ir.CheckOK && ir.CheckAge.D() >= tc.idle-checkTooLate:
		// The probe retries a check that was sent late (maxLateFails times); a machine
		// that delayed every try up to the backend's own timeout says nothing of the probe.
		t.Logf("check sent at idle age %s, at the backend's timeout %s: the machine was late", ir.CheckAge.D(), tc.idle)
	case !ir.CheckOK:
		t.Errorf("check below the timeout: age %s ok %v, want a successful check", ir.CheckAge.D(), ir.CheckOK)
	}
}

func checkLimit(t *testing.T, lr *LimitResult, tc backendCase) {
	t.Helper()
	if lr.Limit != tc.limit || (tc.limit > 0 && lr.Signalled != tc.signalled) {
		t.Errorf("request limit = %d (signalled %v), want %d (signalled %v)", lr.Limit, lr.Signalled, tc.limit, tc.signalled)
	}
}

func TestProbeGoBackends(t *testing.T) {
	t.Parallel()
	cases := []backendCase{
		{name: "idle 1s", addr: func(t *testing.T, _ *backendCase) string { return goBackend(t, time.Second, true) },
			maxWait: 10 * time.Second, keepsAlive: true, idle: time.Second},
		{name: "idle 2s", addr: func(t *testing.T, _ *backendCase) string { return goBackend(t, 2*time.Second, true) },
			maxWait: 10 * time.Second, keepsAlive: true, idle: 2 * time.Second},
		{name: "no idle timeout", addr: func(t *testing.T, _ *backendCase) string { return goBackend(t, 0, true) },
			maxWait: 3 * time.Second, keepsAlive: true},
		{name: "keep-alives disabled", addr: func(t *testing.T, _ *backendCase) string { return goBackend(t, time.Second, false) },
			maxWait: 3 * time.Second, keepsAlive: false},
		{name: "silent close after 7 requests", addr: func(t *testing.T, _ *backendCase) string {
			return testutil.NewBackend(t, testutil.BackendOptions{IdleClose: 700 * time.Millisecond, AdvertiseMax: 7}).Addr()
		}, maxWait: 10 * time.Second, keepsAlive: true, idle: 700 * time.Millisecond, limit: 7},
		{name: "advertises timeout=5 but closes after 500ms", addr: func(t *testing.T, _ *backendCase) string {
			return testutil.NewBackend(t, testutil.BackendOptions{IdleClose: 500 * time.Millisecond, Advertise: 5}).Addr()
		}, maxWait: 10 * time.Second, keepsAlive: true, idle: 500 * time.Millisecond},
		{name: "Connection: close after 5 requests", addr: func(t *testing.T, _ *backendCase) string {
			return testutil.NewBackend(t, testutil.BackendOptions{IdleClose: 300 * time.Millisecond, CloseAfter: 5}).Addr()
		}, maxWait: 10 * time.Second, keepsAlive: true, idle: 300 * time.Millisecond, limit: 5, signalled: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			runCase(t, tc)
		})
	}
}

// TestProbeCancel: a canceled probe returns at once with the context's error, its
// connections closed.
func TestProbeCancel(t *testing.T) {
	t.Parallel()
	addr := goBackend(t, 0, true)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(300*time.Millisecond, cancel)
	start := time.Now()
	_, err := Probe(ctx, addr, Options{MaxWait: time.Minute})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("canceled probe took %s", took)
	}
}

func TestProbeUnreachable(t *testing.T) {
	t.Parallel()
	addr := testutil.RefusingAddr(t)
	if _, err := Probe(context.Background(), addr, Options{}); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Errorf("err = %v, want connection refused", err)
	}
	if _, err := Probe(context.Background(), "no-port", Options{}); err == nil {
		t.Error("address without port: no error")
	}
}
