package upstream

import (
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestAdmit: limits cap concurrent requests and retries; 0 is unlimited; Release frees a slot.
func TestAdmit(t *testing.T) {
	u := &Upstream{MaxRequests: 2, MaxRetries: 1}
	for i := range 2 {
		if !u.Admit() {
			t.Fatalf("request %d refused under max 2", i+1)
		}
	}
	if u.Admit() {
		t.Fatal("third request admitted over max 2")
	}
	u.Release()
	if !u.Admit() {
		t.Fatal("request refused after a release")
	}
	if !u.AdmitRetry() || u.AdmitRetry() {
		t.Fatal("retry limit 1 not enforced")
	}
	u.ReleaseRetry()
	if req, ret := u.Active(); req != 2 || ret != 0 {
		t.Fatalf("Active = %d, %d; want 2, 0", req, ret)
	}
	// Concurrent admits never exceed the limit.
	u = &Upstream{MaxRequests: 5}
	var wg sync.WaitGroup
	var mu sync.Mutex
	admitted := 0
	for range 50 {
		wg.Go(func() {
			if u.Admit() {
				mu.Lock()
				admitted++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if admitted != 5 {
		t.Fatalf("admitted %d of 50 concurrent, want 5", admitted)
	}
	unlimited := &Upstream{}
	for range 1000 {
		if !unlimited.Admit() {
			t.Fatal("unlimited upstream refused a request")
		}
	}
}

// TestEjectionBackoff: each ejection lasts base × n, capped at max; it ends on its own at
// the next pick after it expires; after a quiet max the multiplier starts over.
func TestEjectionBackoff(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		tg := &Target{Addr: "a"}
		u := &Upstream{ID: "u"}
		u.Swap([]*Target{tg}, nil)
		base, maxD := 10*time.Second, 25*time.Second
		for i, want := range []time.Duration{10 * time.Second, 20 * time.Second, 25 * time.Second} {
			if d := u.Eject(tg, base, maxD, "test"); d != want {
				t.Fatalf("ejection %d lasts %v, want %v", i+1, d, want)
			}
			if h := tg.Health(); h.State != StateEjected || h.Ejections != i+1 {
				t.Fatalf("Health = %+v, want ejected #%d", h, i+1)
			}
			if d := u.Eject(tg, base, maxD, "again"); d != 0 {
				t.Fatal("ejected an ejected target again")
			}
			time.Sleep(want - time.Nanosecond) // fake clock (synctest): the time under test passes
			if u.availableNow(tg, time.Now()) {
				t.Fatal("available before the ejection ended")
			}
			time.Sleep(time.Nanosecond)
			if !u.availableNow(tg, time.Now()) {
				t.Fatal("not available when the ejection ended")
			}
			if h := tg.Health(); h.State != StateUnknown || h.Reason != "ejection ended" {
				t.Fatalf("after ejection: %+v", h)
			}
		}
		time.Sleep(maxD + time.Second)
		if d := u.Eject(tg, base, maxD, "test"); d != base {
			t.Fatalf("after a quiet max_ejection: %v, want base %v", d, base)
		}
	})
}

// TestActiveVerdicts: SetActive moves between healthy and unhealthy, ends an ejection
// early, and starts slow start when a target comes back.
func TestActiveVerdicts(t *testing.T) {
	tg := &Target{Addr: "a"}
	u := &Upstream{ID: "u", SlowStart: time.Minute}
	u.Swap([]*Target{tg}, nil)
	u.SetActive(tg, false, "probe failed")
	if h := tg.Health(); h.State != StateUnhealthy || h.Reason != "probe failed" || h.Since.IsZero() {
		t.Fatalf("Health = %+v", h)
	}
	if tg.available(time.Now()) {
		t.Fatal("unhealthy target available")
	}
	u.SetActive(tg, true, "probe passed")
	if h := tg.Health(); h.State != StateHealthy || tg.rampFrom.Load() == 0 {
		t.Fatalf("Health = %+v, ramp %d; want healthy and ramping", h, tg.rampFrom.Load())
	}
	u.Eject(tg, time.Hour, time.Hour, "5 consecutive failures")
	u.SetActive(tg, true, "probe passed")
	if h := tg.Health(); h.State != StateHealthy || !tg.available(time.Now()) {
		t.Fatalf("active success did not end the ejection: %+v", h)
	}
	// Inherit carries everything to the target of the next generation.
	u.Eject(tg, time.Hour, time.Hour, "again")
	next := &Target{Addr: "a"}
	next.Inherit(tg)
	if h := next.Health(); h.State != StateEjected || h.Ejections != 2 {
		t.Fatalf("inherited %+v", h)
	}
}
