package upstream

import (
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/connpool"
	"sluice/internal/h2pool"
)

// State is a target's health as seen by the gateway.
type State string

// Target health states.
const (
	// StateUnknown: no active check has decided yet (available).
	StateUnknown State = "unknown"
	// StateHealthy: the active check passed (available).
	StateHealthy State = "healthy"
	// StateUnhealthy: the active check failed unhealthy_threshold times in a row.
	StateUnhealthy State = "unhealthy"
	// StateEjected: passive outlier detection took the target out until EjectedUntil.
	StateEjected State = "ejected"
)

// HealthState is a read-only snapshot of a target's health.
type HealthState struct {
	State State
	// Since is when State was entered (zero while unknown since start).
	Since time.Time
	// Reason says why, e.g. "active check: status 503" or "5 consecutive failures".
	Reason string
	// ConsecutiveFailures counts failed real requests in a row (passive checking only).
	ConsecutiveFailures int64
	// Ejections counts recent passive ejections (it sets the next ejection's length).
	Ejections int
	// EjectionsTotal counts every passive ejection since the target was created (carried
	// over reloads).
	EjectionsTotal int64
	// EjectedUntil is when an ejection ends (zero when not ejected).
	EjectedUntil time.Time
}

// Target is one backend address of an upstream and the pool of connections to it.
//
// Concurrency: the fields balancers read on every pick (down, ejectedUntil, rampFrom) are
// atomics; transitions take mu so that a transition and its log line are one step.
type Target struct {
	// Addr is the address dialed, host:port (an IP address once discovery resolved a name).
	Addr   string
	Weight int
	Pool   *connpool.Pool
	// H2, when set, carries the target's requests as HTTP/2 streams (protocol h2, h2c);
	// Pool then only serves what needs HTTP/1.1 (none today).
	H2 *h2pool.Pool
	// Name is the configured name that discovery resolved to Addr: the target's address with
	// a host name ("api.internal:8080") or its SRV name. "" for a target given as an IP.
	Name string
	// InFlight counts requests being served by this target (for balancers and the admin API).
	InFlight atomic.Int64
	// ConsecutiveFailures counts failed attempts in a row; the passive checker maintains it.
	ConsecutiveFailures atomic.Int64

	down         atomic.Bool  // active check says unhealthy
	ejectedUntil atomic.Int64 // unix nanoseconds; 0: not ejected
	rampFrom     atomic.Int64 // unix nanoseconds slow start began; 0: not ramping

	mu         sync.Mutex
	state      State // the non-ejected state: unknown, healthy or unhealthy
	since      time.Time
	reason     string
	ejections  int
	ejectTotal int64     // every ejection, for the admin view
	lastEject  time.Time // when the last ejection ended or was lifted
}

// Health returns a snapshot of t's health.
func (t *Target) Health() HealthState {
	t.mu.Lock()
	defer t.mu.Unlock()
	h := HealthState{State: t.state, Since: t.since, Reason: t.reason,
		ConsecutiveFailures: t.ConsecutiveFailures.Load(), Ejections: t.ejections,
		EjectionsTotal: t.ejectTotal}
	if h.State == "" {
		h.State = StateUnknown
	}
	if until := t.ejectedUntil.Load(); until != 0 && time.Now().UnixNano() < until {
		h.State, h.EjectedUntil = StateEjected, time.Unix(0, until)
	}
	return h
}

// available reports whether t may get traffic at now, without side effects.
func (t *Target) available(now time.Time) bool {
	if t.down.Load() {
		return false
	}
	until := t.ejectedUntil.Load()
	return until == 0 || now.UnixNano() >= until
}

// availableNow is available, and ends an expired ejection (logging it and starting slow
// start) the first time a pick notices it: ejections end without a timer goroutine.
func (u *Upstream) availableNow(t *Target, now time.Time) bool {
	until := t.ejectedUntil.Load()
	if until != 0 && now.UnixNano() >= until && t.ejectedUntil.CompareAndSwap(until, 0) {
		t.mu.Lock()
		old := StateEjected
		t.lastEject = now
		t.since, t.reason = now, "ejection ended"
		t.mu.Unlock()
		u.logTransition(t, old, t.nonEjected(), "ejection ended")
		if !t.down.Load() {
			u.startRamp(t, now)
		}
	}
	return t.available(now)
}

func (t *Target) nonEjected() State {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state == "" {
		return StateUnknown
	}
	return t.state
}

// SetActive records the verdict of the active checker once a threshold was crossed: healthy
// ends an ejection early and starts slow start if t was unavailable; unhealthy takes t out.
func (u *Upstream) SetActive(t *Target, healthy bool, why string) {
	now := time.Now()
	t.mu.Lock()
	old := t.state
	if old == "" {
		old = StateUnknown
	}
	wasAvail := t.available(now)
	wasEjected := t.ejectedUntil.Load() != 0 && !wasAvail && !t.down.Load()
	next := StateUnhealthy
	if healthy {
		next = StateHealthy
		if t.ejectedUntil.Swap(0) != 0 {
			t.lastEject = now
		}
	}
	if next == old && !wasEjected {
		t.mu.Unlock()
		return
	}
	t.state, t.since, t.reason = next, now, why
	t.down.Store(!healthy)
	t.mu.Unlock()
	if wasEjected {
		old = StateEjected
	}
	u.logTransition(t, old, next, why)
	if healthy && !wasAvail {
		u.startRamp(t, now)
	}
}

// Eject takes t out for base × (number of recent ejections), capped at maxD, and returns that
// duration. Ejections are "recent" while t was ejected again within maxD of the last one
// ending; after a quiet maxD the multiplier starts over.
func (u *Upstream) Eject(t *Target, base, maxD time.Duration, why string) time.Duration {
	now := time.Now()
	t.mu.Lock()
	if until := t.ejectedUntil.Load(); until != 0 && now.UnixNano() < until {
		t.mu.Unlock()
		return 0 // already ejected
	}
	if !t.lastEject.IsZero() && now.Sub(t.lastEject) > maxD {
		t.ejections = 0
	}
	t.ejections++
	t.ejectTotal++
	d := min(base*time.Duration(t.ejections), maxD)
	t.ejectedUntil.Store(now.Add(d).UnixNano())
	old := t.state
	if old == "" {
		old = StateUnknown
	}
	t.since, t.reason = now, why
	t.mu.Unlock()
	u.logTransition(t, old, StateEjected, why, "ejection", d)
	return d
}

// Inherit copies old's health (verdict, ejection, ramp, counters) into t, for a target
// carried over a config reload.
func (t *Target) Inherit(old *Target) {
	old.mu.Lock()
	defer old.mu.Unlock()
	t.mu.Lock()
	defer t.mu.Unlock()
	t.state, t.since, t.reason = old.state, old.since, old.reason
	t.ejections, t.ejectTotal, t.lastEject = old.ejections, old.ejectTotal, old.lastEject
	t.down.Store(old.down.Load())
	t.ejectedUntil.Store(old.ejectedUntil.Load())
	t.rampFrom.Store(old.rampFrom.Load())
	t.ConsecutiveFailures.Store(old.ConsecutiveFailures.Load())
}

// DropActive forgets t's active-check verdict, for a target carried over a reload that
// removed the active check: nothing would revise it, so an unhealthy target would stay out
// for the life of the process. t becomes unknown (available unless ejected; an ejection is
// kept, it ends by itself), starting slow start if that made it available.
func (u *Upstream) DropActive(t *Target, why string) {
	now := time.Now()
	t.mu.Lock()
	if t.state == "" || t.state == StateUnknown {
		t.mu.Unlock()
		return
	}
	old := t.state
	wasAvail := t.available(now)
	t.state = StateUnknown
	t.down.Store(false)
	if until := t.ejectedUntil.Load(); until != 0 && now.UnixNano() < until {
		t.mu.Unlock() // shown as ejected, with the ejection's reason, until it ends
		return
	}
	t.since, t.reason = now, why
	t.mu.Unlock()
	u.logTransition(t, old, StateUnknown, why)
	if !wasAvail {
		u.startRamp(t, now)
	}
}

// StartSlowStart begins t's slow start now (for a target that joined in a reload).
func (u *Upstream) StartSlowStart(t *Target) { u.startRamp(t, time.Now()) }

func (u *Upstream) startRamp(t *Target, now time.Time) {
	if u.SlowStart > 0 {
		t.rampFrom.Store(now.UnixNano())
	}
}

// rampWeight scales w from 10% to 100% over window since t's slow start began.
func rampWeight(w int64, t *Target, now time.Time, window time.Duration) int64 {
	from := t.rampFrom.Load()
	if from == 0 {
		return w
	}
	el := now.UnixNano() - from
	if el >= int64(window) {
		t.rampFrom.CompareAndSwap(from, 0)
		return w
	}
	if el < 0 {
		el = 0
	}
	f := 0.1 + 0.9*float64(el)/float64(window)
	return max(int64(float64(w)*f), 1)
}

func (u *Upstream) logTransition(t *Target, old, next State, why string, extra ...any) {
	args := append([]any{"component", "health", "upstream", u.ID, "target", t.Addr,
		"old", string(old), "new", string(next), "why", why}, extra...)
	u.logger().Info("target health changed", args...)
}
