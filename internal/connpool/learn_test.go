package connpool

import (
	"strings"
	"testing"
	"time"
)

func learnPool(t *testing.T) *Pool {
	p := New("192.0.2.1:80", Options{Enabled: true, Learn: true, IdleTimeout: time.Minute,
		SweepInterval: 10 * time.Millisecond, GrowInterval: time.Minute, LearnWindow: time.Minute}, testLogger(t))
	t.Cleanup(func() { p.Close(CloseShutdown) })
	return p
}

func TestHeaderRule(t *testing.T) {
	s := time.Second
	tests := []struct {
		name    string
		headers []time.Duration
		want    time.Duration
	}{
		{name: "first header", headers: []time.Duration{5 * s}, want: 5 * s},
		{name: "lower applies at once", headers: []time.Duration{5 * s, 2 * s}, want: 2 * s},
		{name: "higher twice is not enough", headers: []time.Duration{2 * s, 5 * s, 5 * s}, want: 2 * s},
		{name: "higher three in a row", headers: []time.Duration{2 * s, 5 * s, 5 * s, 5 * s}, want: 5 * s},
		{name: "streak broken", headers: []time.Duration{2 * s, 5 * s, 5 * s, 2 * s, 5 * s}, want: 2 * s},
		{name: "streak of a new value restarts", headers: []time.Duration{2 * s, 5 * s, 5 * s, 6 * s, 6 * s}, want: 2 * s},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := learnPool(t)
			now := time.Now()
			for _, h := range tc.headers {
				p.learnHeaderLocked(h, now)
			}
			if p.learn.value != tc.want || p.learn.source != SourceHeader {
				t.Errorf("learned %v from %q, want %v from header", p.learn.value, p.learn.source, tc.want)
			}
		})
	}
}

func TestObservationRule(t *testing.T) {
	ms := time.Millisecond
	type obs struct {
		at     time.Duration // since start
		sample time.Duration
	}
	tests := []struct {
		name string
		obs  []obs
		want time.Duration
	}{
		{name: "single close is not enough", obs: []obs{{0, 2000 * ms}}, want: 0},
		{name: "two agreeing closes", obs: []obs{{0, 2000 * ms}, {5000 * ms, 1900 * ms}}, want: 1900 * ms},
		{name: "restart burst is one event", obs: []obs{{0, 300 * ms}, {5 * ms, 310 * ms}, {12 * ms, 305 * ms}}, want: 0},
		{name: "disagreeing closes", obs: []obs{{0, 300 * ms}, {5000 * ms, 2000 * ms}}, want: 0},
		{name: "too short", obs: []obs{{0, 5 * ms}, {5000 * ms, 5 * ms}}, want: 0},
		{name: "confirmation too late", obs: []obs{{0, 2000 * ms}, {2 * time.Minute, 2000 * ms}}, want: 0},
		{name: "restart then real timeout", obs: []obs{{0, 300 * ms}, {5000 * ms, 2000 * ms}, {9000 * ms, 1950 * ms}}, want: 1950 * ms},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := learnPool(t)
			start := time.Now()
			for _, o := range tc.obs {
				p.eventLocked(o.sample, o.sample, SourceObserved, start.Add(o.at))
			}
			if p.learn.value != tc.want {
				t.Errorf("learned %v, want %v", p.learn.value, tc.want)
			}
		})
	}
}

func TestFailureAndGrowth(t *testing.T) {
	p := learnPool(t)
	now := time.Now()
	p.learnHeaderLocked(4*time.Second, now)
	p.failureLocked(1500*time.Millisecond, now, now) // below half: needs confirming
	if p.learn.value != 4*time.Second {
		t.Fatalf("outlier failure applied: %v", p.learn.value)
	}
	p.failureLocked(3*time.Second, now, now) // plausible: at once
	if p.learn.value != 3*time.Second || p.learn.source != SourceFailure {
		t.Fatalf("learned %v from %s, want 3s from failure", p.learn.value, p.learn.source)
	}
	p.learnHeaderLocked(4*time.Second, now) // a header may not overrule a failure
	p.learnHeaderLocked(4*time.Second, now)
	p.learnHeaderLocked(4*time.Second, now)
	if p.learn.value != 3*time.Second {
		t.Fatalf("header raised a failure-learned value to %v", p.learn.value)
	}
	p.maintainLocked(now.Add(30 * time.Second))
	if p.learn.value != 3*time.Second {
		t.Fatalf("grew too early: %v", p.learn.value)
	}
	p.maintainLocked(now.Add(time.Minute))
	if want := 3300 * time.Millisecond; p.learn.value != want {
		t.Fatalf("after a clean minute: %v, want %v", p.learn.value, want)
	}
	p.maintainLocked(now.Add(90 * time.Second))
	if want := 3300 * time.Millisecond; p.learn.value != want {
		t.Fatalf("grew twice within a minute: %v", p.learn.value)
	}
}

func TestEffectiveIdle(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		learned time.Duration
		factor  float64
		want    time.Duration
	}{
		{name: "configured", factor: 1, want: time.Minute},
		{name: "learned", learned: 2000 * ms, factor: 1, want: 1700 * ms},
		{name: "halved", learned: 2000 * ms, factor: 0.5, want: 850 * ms},
		{name: "below floor", learned: 10 * ms, factor: 1, want: 0},
		{name: "suspended", learned: 2000 * ms, factor: 0, want: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := learnPool(t)
			p.learn.value, p.heal.factor = tc.learned, tc.factor
			p.recomputeLocked()
			if p.eff != tc.want {
				t.Errorf("effective %v, want %v", p.eff, tc.want)
			}
		})
	}
}

// TestRestartIsOneHealEvent: failures of requests that held their conns when the first
// failure was seen (a restart resets them all at once) count once; failures of requests
// that took their conns afterwards count each, and HealThreshold of them halve reuse.
func TestRestartIsOneHealEvent(t *testing.T) {
	p := learnPool(t)
	t0 := time.Now()
	for i := range 6 { // six requests in flight since t0, reset together at t0+1s
		p.failureLocked(0, t0, t0.Add(time.Second+time.Duration(i)*time.Millisecond))
	}
	if p.heal.factor != 1 {
		t.Fatalf("one restart halved reuse: factor %v", p.heal.factor)
	}
	at := t0.Add(2 * time.Second)
	for range 2 { // two more, each taken after the previous failure
		p.failureLocked(0, at, at.Add(time.Millisecond))
		at = at.Add(10 * time.Millisecond)
	}
	if p.heal.factor != 0.5 {
		t.Fatalf("3 separate failures: factor %v, want 0.5", p.heal.factor)
	}
}

// answeredAt returns n "alive" steps (reused conns answering) at idle age v, 1ms apart from at.
func answeredAt(n int, at, v time.Duration) []step { return sightings(n, at, v, "alive") }

// probedAt returns n "probed" steps (idle conns probed alive) at idle age v, 1ms apart from at.
func probedAt(n int, at, v time.Duration) []step { return sightings(n, at, v, "probed") }

func sightings(n int, at, v time.Duration, kind string) []step {
	var out []step
	for i := range n {
		out = append(out, step{at + time.Duration(i)*time.Millisecond, kind, v})
	}
	return out
}

// step is one thing the backend did, at a chosen moment (TestProvisionalRule).
type step struct {
	at   time.Duration // since start
	kind string        // reset, alive (answered), probed, closed (an idle conn found closed at idle age v), observed, header, tick
	v    time.Duration
}

// TestProvisionalRule: what one reset on reuse teaches (provisional.go), step by step at
// chosen moments. minMargin is 20ms here, so a reset at 50ms is refuted by a conn alive at
// 70ms or more.
func TestProvisionalRule(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name     string
		steps    []step
		learned  time.Duration
		src      string
		provAge  time.Duration
		refuted  bool   // the provisional value was refuted by a live conn (unsafeOKLocked)
		wantNote string // the evidence recorded for the learned value contains this
	}{
		{name: "one reset is provisional", steps: []step{{0, "reset", 50 * ms}}, provAge: 50 * ms},
		{name: "a second agreeing reset is learned", steps: []step{{0, "reset", 50 * ms}, {time.Second, "reset", 52 * ms}},
			learned: 50 * ms, src: SourceFailure, wantNote: "reset on reuse at idle 50ms, then reset on reuse at idle 52ms"},
		{name: "a disagreeing reset is not", steps: []step{{0, "reset", 50 * ms}, {time.Second, "reset", 90 * ms}}, provAge: 50 * ms},
		{name: "a conn alive past the refute age refutes it: POSTs stay bounded on other conns",
			steps: []step{{0, "reset", 50 * ms}, {100 * ms, "alive", 70 * ms}}, provAge: 50 * ms, refuted: true},
		{name: "and its event: a later reset at that age is provisional again, unrefuted",
			steps: []step{{0, "reset", 50 * ms}, {100 * ms, "alive", 70 * ms}, {time.Second, "reset", 50 * ms}}, provAge: 50 * ms},
		{name: "a conn alive below the refute age keeps it", steps: []step{{0, "reset", 50 * ms}, {100 * ms, "alive", 69 * ms}}, provAge: 50 * ms},
		{name: "a younger conn closed with it: a restart",
			steps: []step{{0, "reset", 50 * ms}, {5 * ms, "closed", 20 * ms}, {time.Second, "reset", 50 * ms}}, provAge: 50 * ms},
		{name: "a younger conn closed just before it: a restart", steps: []step{{0, "closed", 20 * ms}, {5 * ms, "reset", 50 * ms}}},
		{name: "a younger conn closed long before: no restart", steps: []step{{0, "closed", 20 * ms}, {time.Second, "reset", 50 * ms}}, provAge: 50 * ms},
		{name: "an older conn closed with it: no restart", steps: []step{{0, "closed", 200 * ms}, {5 * ms, "reset", 50 * ms}}, provAge: 50 * ms},
		{name: "agreeing resets contradicted by a live conn stay provisional",
			steps: []step{{0, "alive", 200 * ms}, {time.Second, "reset", 50 * ms}, {2 * time.Second, "reset", 51 * ms}}, provAge: 50 * ms},
		{name: "agreeing resets at the gap most reuses survive stay provisional (crashes meeting a steady client)",
			steps: append(answeredAt(8, 0, 50*ms), step{time.Second, "reset", 48 * ms}, step{2 * time.Second, "reset", 49 * ms}), provAge: 48 * ms},
		{name: "fewer answered reuses past that age: learned",
			steps:   append(answeredAt(7, 0, 50*ms), step{time.Second, "reset", 48 * ms}, step{2 * time.Second, "reset", 49 * ms}),
			learned: 48 * ms, src: SourceFailure, wantNote: "reset on reuse at idle 48ms, then reset on reuse at idle 49ms"},
		{name: "answered reuses younger than the resets do not count",
			steps:   append(answeredAt(20, 0, 47*ms), step{time.Second, "reset", 48 * ms}, step{2 * time.Second, "reset", 49 * ms}),
			learned: 48 * ms, src: SourceFailure},
		{name: "nor answered reuses older than the learn window",
			steps:   append(answeredAt(8, 0, 50*ms), step{61 * time.Second, "reset", 48 * ms}, step{62 * time.Second, "reset", 49 * ms}),
			learned: 48 * ms, src: SourceFailure},
		{name: "nor conns probed alive",
			steps:   append(probedAt(8, 0, 50*ms), step{time.Second, "reset", 48 * ms}, step{2 * time.Second, "reset", 49 * ms}),
			learned: 48 * ms, src: SourceFailure},
		{name: "a reset agreeing with an idle close seen before is learned at once",
			steps: []step{{0, "observed", 55 * ms}, {time.Second, "reset", 50 * ms}}, learned: 50 * ms, src: SourceFailure,
			wantNote: "idle close at 55ms, then reset on reuse at idle 50ms"},
		{name: "past the learn window it grows back 10% per grow interval, not dropped",
			steps: []step{{0, "reset", 50 * ms}, {30 * time.Second, "tick", 0}, {61 * time.Second, "tick", 0}, {90 * time.Second, "tick", 0}}, provAge: 55 * ms},
		{name: "and again a grow interval later",
			steps: []step{{0, "reset", 50 * ms}, {61 * time.Second, "tick", 0}, {122 * time.Second, "tick", 0}}, provAge: 60500 * time.Microsecond},
		{name: "near the idle timeout's reach, within the learn window",
			steps: []step{{0, "reset", 66 * time.Second}, {30 * time.Second, "tick", 0}}, provAge: 66 * time.Second},
		{name: "dropped when it grows past the idle timeout's reach",
			steps: []step{{0, "reset", 66 * time.Second}, {61 * time.Second, "tick", 0}}},
		{name: "within 25% below the learned value: lowered at once", steps: []step{{0, "header", time.Second}, {time.Second, "reset", 800 * ms}},
			learned: 800 * ms, src: SourceFailure, wantNote: "within 25% of the learned value"},
		{name: "between half and 75% of the learned value: provisional",
			steps: []step{{0, "header", time.Second}, {time.Second, "reset", 600 * ms}}, learned: time.Second, src: SourceHeader, provAge: 600 * ms},
		{name: "below half the learned value: waits for a second event",
			steps: []step{{0, "header", time.Second}, {time.Second, "reset", 400 * ms}}, learned: time.Second, src: SourceHeader},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := learnPool(t)
			p.opts.UnsafeMaxIdle = time.Second // so that a provisional value has a bound to lower
			p.recomputeLocked()
			start := time.Now()
			for _, s := range tc.steps {
				now := start.Add(s.at)
				switch s.kind {
				case "reset":
					p.failureLocked(s.v, now, now)
				case "alive":
					p.noteAliveLocked(&Conn{}, s.v, aliveAnswered, now)
				case "probed":
					p.noteAliveLocked(&Conn{}, s.v, aliveProbed, now)
				case "closed":
					p.youngDeathLocked(s.v, now)
				case "observed":
					p.eventLocked(s.v, s.v, SourceObserved, now)
				case "header":
					p.learnHeaderLocked(s.v, now)
				case "tick":
					p.maintainLocked(now)
				}
			}
			l := p.learn
			if l.value != tc.learned || l.source != tc.src || l.prov.age != tc.provAge || l.prov.refuted != tc.refuted {
				t.Errorf("learned %v from %q, provisional %v (refuted %v); want %v from %q, provisional %v (refuted %v)",
					l.value, l.source, l.prov.age, l.prov.refuted, tc.learned, tc.src, tc.provAge, tc.refuted)
			}
			if !strings.Contains(l.evidence, tc.wantNote) {
				t.Errorf("evidence %q, want it to name %q", l.evidence, tc.wantNote)
			}
			// A provisional value bounds non-idempotent requests as a learned one would.
			if limit := time.Duration(p.opts.SafetyFraction*float64(l.prov.age)) / unsafeShare; l.prov.age > 0 && p.unsafeIdle > limit {
				t.Errorf("unsafe max idle %v with provisional %v, want at most %v", p.unsafeIdle, l.prov.age, limit)
			}
		})
	}
}
