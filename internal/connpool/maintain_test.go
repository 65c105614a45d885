package connpool

import (
	"math/rand/v2"
	"strconv"
	"testing"
	"time"
)

// maintainOpts are short rule periods, so that random evidence reaches every rule.
var maintainOpts = Options{Enabled: true, Learn: true, IdleTimeout: 30 * time.Second,
	SweepInterval: 10 * time.Millisecond, GrowInterval: 2 * time.Second, LearnWindow: 3 * time.Second,
	HealQuiet: 4 * time.Second, HealWindow: 5 * time.Second}

// twins are two pools given the same evidence: ref runs maintainLocked's rules at every call,
// as before the due time; due skips them until dueLocked says one may act.
type twins struct {
	t        *testing.T
	ref, due *Pool
	acted    [3]int // calls at which the reuse factor recovered, the learned value grew, the provisional one grew
}

func newTwins(t *testing.T) *twins {
	return &twins{t: t, ref: New("192.0.2.1:80", maintainOpts, nil), due: New("192.0.2.1:80", maintainOpts, nil)}
}

// each gives both pools the same evidence.
func (tw *twins) each(f func(p *Pool)) {
	f(tw.ref)
	f(tw.due)
}

// maintain runs maintainLocked on both at now and fails when they differ.
func (tw *twins) maintain(now time.Time, where string) {
	tw.t.Helper()
	before := state(tw.ref)
	tw.ref.due = time.Time{}
	tw.ref.maintainLocked(now)
	tw.due.maintainLocked(now)
	a, b := state(tw.ref), state(tw.due)
	if a != b {
		tw.t.Fatalf("%s: every rule at every call: %+v; rules when due: %+v", where, a, b)
	}
	tw.acted[0] += b2i(a.factor > before.factor)
	tw.acted[1] += b2i(a.learned > before.learned)
	tw.acted[2] += b2i(a.prov > before.prov)
}

// TestMaintainDueIsExact: maintainLocked skips its rules until the due time dueLocked
// computed, which is only right if every change of what the rules read resets it. Healing's
// recovery and the growth of learned and provisional values must act at the same calls as
// when every rule runs at every call, whatever the evidence (resets on reuse, observed closes,
// Keep-Alive headers) and however the clocks it comes with step: most move on, some step
// back, as clocks read by goroutines that then queue for the lock do.
func TestMaintainDueIsExact(t *testing.T) {
	t.Run("random evidence", func(t *testing.T) {
		var acted [3]int
		for seed := range uint64(1000) {
			tw, rng, now := newTwins(t), rand.New(rand.NewPCG(seed, 1)), time.Now()
			for step := range 300 {
				switch d := time.Duration(rng.IntN(1500)) * time.Millisecond; rng.IntN(10) {
				case 0, 1, 2:
					now = now.Add(-d / 30) // a clock read before the latest one
				case 3:
					now = now.Add(d)
				default:
					now = now.Add(d / 30)
				}
				age := time.Duration(200+rng.IntN(4000)) * time.Millisecond
				switch rng.IntN(4) {
				case 0:
					tw.each(func(p *Pool) { p.failureLocked(age, now.Add(-time.Millisecond), now) })
				case 1:
					tw.each(func(p *Pool) { p.eventLocked(age, age+age/10, SourceObserved, now) })
				case 2:
					tw.each(func(p *Pool) { p.learnHeaderLocked(age, now) })
				}
				tw.maintain(now, "seed "+strconv.FormatUint(seed, 10)+" step "+strconv.Itoa(step))
			}
			for i, n := range tw.acted {
				acted[i] += n
			}
		}
		t.Logf("rules acted: reuse factor recovered %d times, learned value grew %d, provisional grew %d", acted[0], acted[1], acted[2])
		for i, n := range acted {
			if n == 0 {
				t.Errorf("rule %d never acted: the evidence does not exercise it", i)
			}
		}
	})
	// A failure noted with a clock read before the previous failure's: the quiet period
	// counts from the earlier time, as the rule reads it.
	t.Run("failure with an earlier clock", func(t *testing.T) {
		tw, t0 := newTwins(t), time.Now()
		for i := range 3 { // three failures halve the reuse factor
			at := t0.Add(time.Duration(i) * 10 * time.Millisecond)
			tw.each(func(p *Pool) { p.healFailureLocked(at, at.Add(time.Millisecond)) })
		}
		t1 := t0.Add(time.Second)
		tw.each(func(p *Pool) { p.healFailureLocked(t1.Add(-time.Millisecond), t1) })
		tw.maintain(t1, "after the failure at t1")
		early := t1.Add(-20 * time.Millisecond)
		tw.each(func(p *Pool) { p.healFailureLocked(early.Add(-time.Millisecond), early) })
		for d := time.Duration(0); d <= 40*time.Millisecond; d += 5 * time.Millisecond {
			tw.maintain(early.Add(maintainOpts.HealQuiet+d), "quiet since the earlier clock + "+d.String())
		}
		if tw.acted[0] != 1 {
			t.Fatalf("the reuse factor recovered %d times, want once", tw.acted[0])
		}
	})
}

type maintained struct {
	factor            float64
	learned, prov     time.Duration
	source            string
	eff, unsafe       time.Duration
	lastGrow, provGrw time.Time
}

func state(p *Pool) maintained {
	return maintained{factor: p.heal.factor, learned: p.learn.value, prov: p.learn.prov.age, source: p.learn.source,
		eff: p.eff, unsafe: p.unsafeIdle, lastGrow: p.learn.lastGrow, provGrw: p.learn.prov.grown}
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}
