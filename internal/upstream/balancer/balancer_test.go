package balancer_test

import (
	"fmt"
	"math"
	"testing"
	"testing/synctest"
	"time"

	"sluice/internal/config"
	"sluice/internal/upstream"
	"sluice/internal/upstream/balancer"
)

// fakeReq is an upstream.Request with a fixed header, cookie, query value and client IP.
type fakeReq struct{ key string }

func (r fakeReq) ClientIP() string { return r.key }
func (r fakeReq) URI() string      { return "/k/" + r.key }
func (r fakeReq) HeaderValue(n string) (string, bool) {
	return r.key, n == "X-User" && r.key != ""
}
func (r fakeReq) QueryValue(string) (string, bool)  { return r.key, r.key != "" }
func (r fakeReq) CookieValue(string) (string, bool) { return r.key, r.key != "" }

func targets(weights ...int) []*upstream.Target {
	ts := make([]*upstream.Target, len(weights))
	for i, w := range weights {
		ts[i] = &upstream.Target{Addr: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: w}
	}
	return ts
}

func newUpstream(t *testing.T, policy string, ts []*upstream.Target) *upstream.Upstream {
	t.Helper()
	cfg := config.Balancer{Policy: policy}
	if policy == "hash" {
		cfg.HashOn, cfg.HashKey = "header", "X-User"
	}
	b, err := balancer.New(cfg, ts)
	if err != nil {
		t.Fatal(err)
	}
	u := &upstream.Upstream{ID: "u", PanicThreshold: 0.5}
	u.Swap(ts, b)
	return u
}

// shares counts n picks per target and returns each target's share.
func shares(u *upstream.Upstream, n int, req func(i int) upstream.Request) map[*upstream.Target]float64 {
	out := map[*upstream.Target]float64{}
	for i := range n {
		var r upstream.Request
		if req != nil {
			r = req(i)
		}
		out[u.Pick(r, nil)] += 1 / float64(n)
	}
	return out
}

// TestWeightsHonoured: every policy follows weights 1:2:3 over N sequential picks (idle
// targets, so least_request and ewma tie and draw by weight); tolerances are stated per
// policy: WRR is exact per cycle, the random policies are within 1.5 percentage points
// (about 7 standard deviations at N=60000), the hash ring within 5 points over 60000 keys.
func TestWeightsHonoured(t *testing.T) {
	tests := []struct {
		policy string
		n      int
		tol    float64
	}{
		{"round_robin", 6000, 0.0001},
		{"least_request", 60000, 0.015},
		{"ewma", 60000, 0.015},
		{"hash", 60000, 0.05},
	}
	for _, tc := range tests {
		t.Run(tc.policy, func(t *testing.T) {
			ts := targets(1, 2, 3)
			u := newUpstream(t, tc.policy, ts)
			got := shares(u, tc.n, func(i int) upstream.Request { return fakeReq{fmt.Sprint("user-", i)} })
			for i, tg := range ts {
				want := float64(tg.Weight) / 6
				if math.Abs(got[tg]-want) > tc.tol {
					t.Errorf("target %d (weight %d): share %.4f, want %.4f ± %.4f", i, tg.Weight, got[tg], want, tc.tol)
				}
			}
			t.Logf("%s: shares %.4f %.4f %.4f (want 0.1667 0.3333 0.5000 ± %.4f)", tc.policy, got[ts[0]], got[ts[1]], got[ts[2]], tc.tol)
		})
	}
}

// TestSkipAndHealth: no policy returns a tried target while another is left, nor an
// unavailable one (outside panic mode); with every target unavailable and panic mode off,
// Pick returns nil.
func TestSkipAndHealth(t *testing.T) {
	for _, policy := range []string{"round_robin", "least_request", "ewma", "hash"} {
		t.Run(policy, func(t *testing.T) {
			ts := targets(1, 1, 1, 1)
			u := newUpstream(t, policy, ts)
			for i := range 200 {
				r := fakeReq{fmt.Sprint(i)}
				if got := u.Pick(r, ts[:3]); got != ts[3] {
					t.Fatalf("pick with 3 of 4 tried = %v, want the untried one", got.Addr)
				}
				if got := u.Pick(r, ts); got == nil {
					t.Fatal("all tried: want a tried target, got nil")
				}
			}
			u.Eject(ts[0], time.Hour, time.Hour, "test")
			for i := range 400 {
				if got := u.Pick(fakeReq{fmt.Sprint(i)}, nil); got == ts[0] {
					t.Fatal("picked an ejected target")
				}
			}
			// Two of four out: 50% available is not below the 0.5 threshold.
			u.SetActive(ts[1], false, "test")
			if u.Panicking() {
				t.Fatal("panic mode at exactly the threshold")
			}
			for i := range 400 {
				if got := u.Pick(fakeReq{fmt.Sprint(i)}, nil); got == ts[0] || got == ts[1] {
					t.Fatalf("picked unavailable target %s", got.Addr)
				}
			}
			// Three of four out: panic, every target is eligible again.
			u.SetActive(ts[2], false, "test")
			seen := map[*upstream.Target]bool{}
			for i := range 400 {
				seen[u.Pick(fakeReq{fmt.Sprint(i)}, nil)] = true
			}
			if !u.Panicking() || len(seen) != 4 {
				t.Fatalf("panic mode: panicking=%v, %d targets used, want 4", u.Panicking(), len(seen))
			}
			u.PanicThreshold = 0
			u.SetActive(ts[3], false, "test")
			if got := u.Pick(fakeReq{"x"}, nil); got != nil {
				t.Fatalf("no available target and panic off: got %s, want nil", got.Addr)
			}
			u.SetActive(ts[2], true, "test")
			if got := u.Pick(fakeReq{"x"}, nil); got != ts[2] {
				t.Fatalf("one target back: got %v, want it", got)
			}
		})
	}
}

// TestLeastRequestAvoidsStuck: a target with 50 stuck requests gets nothing while two idle
// ones exist (two distinct draws never both land on it).
func TestLeastRequestAvoidsStuck(t *testing.T) {
	ts := targets(1, 1, 1)
	ts[0].InFlight.Store(50)
	u := newUpstream(t, "least_request", ts)
	got := shares(u, 3000, nil)
	if got[ts[0]] != 0 {
		t.Errorf("stuck target got share %.4f, want 0", got[ts[0]])
	}
	// With load on every target, the one with fewer per weight wins comparisons.
	ts[1].InFlight.Store(10)
	ts[2].InFlight.Store(2)
	got = shares(u, 3000, nil)
	if got[ts[2]] < 0.6 {
		t.Errorf("least loaded target share %.3f, want > 0.6", got[ts[2]])
	}
	t.Logf("in flight 50/10/2: shares %.3f %.3f %.3f", got[ts[0]], got[ts[1]], got[ts[2]])
}

// TestEWMAPrefersFast feeds latencies: 20 ms on one target, 1 ms on the others; the slow
// one then gets almost nothing, and a single slow sample (peak) turns a fast target slow at once.
func TestEWMAPrefersFast(t *testing.T) {
	ts := targets(1, 1, 1)
	e := balancer.NewEWMA(ts, 10*time.Second)
	u := &upstream.Upstream{PanicThreshold: 0.5}
	u.Swap(ts, e)
	for i := range 3 {
		lat := time.Millisecond
		if i == 0 {
			lat = 20 * time.Millisecond
		}
		u.Done(ts[i], upstream.Result{Latency: lat, Status: 200})
	}
	got := shares(u, 3000, nil)
	if got[ts[0]] > 0.01 {
		t.Errorf("slow target share %.4f, want < 1%%", got[ts[0]])
	}
	u.Done(ts[1], upstream.Result{Latency: 50 * time.Millisecond, Status: 200})
	if l := e.Latency(ts[1]); l < 49*time.Millisecond {
		t.Errorf("after a 50ms peak, ewma = %v, want ~50ms", l)
	}
	u.Done(ts[1], upstream.Result{Latency: time.Millisecond, Status: 200})
	if l := e.Latency(ts[1]); l < 40*time.Millisecond {
		t.Errorf("one fast sample right after the peak pulled ewma to %v; want it to decay slowly", l)
	}
	u.Done(ts[2], upstream.Result{Failed: true})
	if l := e.Latency(ts[2]); l < balancer.FailurePenalty/2 {
		t.Errorf("failure penalty not applied: %v", l)
	}
}

// TestHashMinimalRemap: keys stick to their target, and removing one of 5 targets moves only
// the keys it owned (ideal 1/5 = 20%); ejecting it moves exactly the same keys.
func TestHashMinimalRemap(t *testing.T) {
	const keys = 100000
	ts := targets(1, 1, 1, 1, 1)
	full := newUpstream(t, "hash", ts)
	less := newUpstream(t, "hash", ts[:4]) // ts[4] removed from config
	moved, wrong := 0, 0
	before := make([]*upstream.Target, keys)
	for i := range keys {
		r := fakeReq{fmt.Sprint("session-", i)}
		a := full.Pick(r, nil)
		if again := full.Pick(r, nil); again != a {
			t.Fatalf("key %d moved between two picks", i)
		}
		before[i] = a
		if b := less.Pick(r, nil); b != a {
			moved++
			if a != ts[4] {
				wrong++
			}
		}
	}
	share := float64(moved) / keys
	t.Logf("hash ring: removing 1 of 5 targets moved %.2f%% of %d keys (ideal 20%%); keys of remaining targets moved: %d",
		100*share, keys, wrong)
	if wrong != 0 || share < 0.15 || share > 0.25 {
		t.Errorf("moved %.4f (wrong %d), want 0.15..0.25 and 0 wrong", share, wrong)
	}
	full.PanicThreshold = 0
	full.Eject(ts[4], time.Hour, time.Hour, "test")
	for i := range keys {
		r := fakeReq{fmt.Sprint("session-", i)}
		if got, want := full.Pick(r, nil), less.Pick(r, nil); got != want {
			t.Fatalf("key %d: with target ejected got %s, with it removed %s", i, got.Addr, want.Addr)
		}
	}
	// Without the key, hashing falls back to round robin.
	got := shares(full, 400, func(int) upstream.Request { return fakeReq{} })
	for _, tg := range ts[:4] {
		if math.Abs(got[tg]-0.25) > 1e-9 {
			t.Errorf("fallback round robin share %.3f, want 0.25", got[tg])
		}
	}
}

// TestSlowStart: a target that joins ramps from ~10% of its weight to 100% linearly over
// the window (checked with round robin and least_request under a fake clock).
func TestSlowStart(t *testing.T) {
	for _, policy := range []string{"round_robin", "least_request"} {
		t.Run(policy, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				ts := targets(1, 1)
				u := newUpstream(t, policy, ts)
				u.SlowStart = 10 * time.Second
				for _, step := range []struct {
					at   time.Duration
					want float64 // share of the new target: r/(1+r), r = 0.1 + 0.9*at/window
				}{
					{0, 0.1 / 1.1}, {5 * time.Second, 0.55 / 1.55}, {10 * time.Second, 0.5}, {20 * time.Second, 0.5},
				} {
					u.StartSlowStart(ts[1])
					time.Sleep(step.at) // fake clock: the picks below all happen at +step.at
					got := shares(u, 20000, nil)[ts[1]]
					if math.Abs(got-step.want) > 0.02 {
						t.Errorf("at +%v: new target share %.3f, want %.3f", step.at, got, step.want)
					}
				}
			})
		})
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := balancer.New(config.Balancer{Policy: "random"}, nil); err == nil {
		t.Error("unknown policy: want error")
	}
	if _, err := balancer.New(config.Balancer{Policy: "hash", HashOn: "moon"}, nil); err == nil {
		t.Error("unknown hash_on: want error")
	}
}
