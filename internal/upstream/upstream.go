// Package upstream holds the runtime form of an upstream: its targets, each with its
// connection pool and health state, the balancer that picks one per attempt, and the
// upstream's concurrency limits.
//
// Availability is decided here, once per pick, so every balancer treats health the same way:
// a target is available unless an active check marked it unhealthy or passive outlier
// detection ejected it. When the share of available targets falls below the panic threshold,
// health is ignored and every target is eligible again (better some errors than none served).
package upstream

import (
	"context"
	"log/slog"
	"sync/atomic"
	"time"
)

// Request is what a balancer may know about the request being balanced.
type Request interface {
	ClientIP() string
	// URI is the path and query as received.
	URI() string
	HeaderValue(name string) (string, bool)
	QueryValue(name string) (string, bool)
	CookieValue(name string) (string, bool)
}

// Pick is one balancing decision. Balancers ask [Pick.Eligible] which targets they may return
// and [Pick.Weight] for each target's weight, so that health, retries and slow start apply to
// every policy alike.
type Pick struct {
	// Req is the request (may be nil in tests).
	Req Request
	// Skip, when non-nil, reports targets to avoid (already tried); a balancer returns a
	// skipped target only when no other eligible target remains.
	Skip func(*Target) bool

	tried       []*Target
	checkHealth bool // false in panic mode and in tests that build a Pick by hand
	now         time.Time
	slowStart   time.Duration
}

// Eligible reports whether a balancer may return t. In the first pass (strict) it honours
// Skip and the targets already tried; in the second it only excludes unavailable targets.
// A balancer tries strict first and falls back to the second pass when nothing was eligible.
func (p *Pick) Eligible(t *Target, strict bool) bool {
	if p.checkHealth && !t.available(p.now) {
		return false
	}
	if !strict {
		return true
	}
	for _, x := range p.tried {
		if x == t {
			return false
		}
	}
	return p.Skip == nil || !p.Skip(t)
}

// WeightScale is the effective weight of a target of configured weight 1 at full strength.
// Effective weights are scaled so that slow start can ramp them in small steps.
const WeightScale = 1000

// Weight returns t's effective weight: its configured weight (at least 1) times
// [WeightScale], reduced during slow start from 10% to 100% linearly over the window.
func (p *Pick) Weight(t *Target) int64 {
	w := int64(max(t.Weight, 1)) * WeightScale
	if p.slowStart <= 0 {
		return w
	}
	return rampWeight(w, t, p.now, p.slowStart)
}

// Balancer picks a target for an attempt. Implementations are safe for concurrent use, honour
// [Pick.Eligible] and [Pick.Weight], and return nil only when no target is eligible even in
// the second pass.
type Balancer interface {
	Pick(p *Pick) *Target
}

// ResultObserver learns from the results of real attempts: the EWMA balancer (latency) and
// passive health checking (failures). [Upstream.Done] feeds the upstream's balancer, when it
// implements ResultObserver, and Upstream.Passive.
type ResultObserver interface {
	Observe(t *Target, r Result)
}

// Result is what happened on one attempt, reported back so that balancers and health
// checks can learn from real traffic.
type Result struct {
	Latency time.Duration
	// Failed: the attempt failed by the target's fault (reason.Code.TargetFault: a connect
	// failure, reset, timeout, bad response, retryable status), not the client's or the
	// gateway's (a full pool).
	Failed bool
	// Status is the backend's response status (0 when there was none).
	Status int
}

// Upstream is a named target group with its balancer, health policy and limits. Set the
// fields and publish the first target set with [Upstream.Swap] before the first Pick; the
// fields are not changed afterwards.
//
// The target set (the targets and the balancer over them) is only read through
// [Upstream.Current], one version at a time: service discovery swaps in new ones at runtime.
type Upstream struct {
	ID string

	// Log receives health transitions (nil: discarded).
	Log *slog.Logger
	// SlowStart is the ramp window of a target that joins or recovers (0: off).
	SlowStart time.Duration
	// PanicThreshold: below this share of available targets, all targets are eligible.
	// 0 disables panic mode (Pick then returns nil when no target is available).
	PanicThreshold float64
	// Passive, when non-nil, learns from every result (outlier ejection).
	Passive ResultObserver
	// MaxRequests and MaxRetries cap requests and retries in flight (0: unlimited);
	// see [Upstream.Admit] and [Upstream.AdmitRetry].
	MaxRequests int64
	MaxRetries  int64

	set       atomic.Pointer[TargetSet] // nil until the first Current or Swap
	panicking atomic.Bool
	active    atomic.Int64
	retries   atomic.Int64
}

// Pick returns a target for req, avoiding those in tried when another one exists, and
// avoiding unavailable targets unless the upstream is in panic mode. It returns nil when no
// target is available and panic mode is off (panic_threshold 0): the caller answers 503
// no_healthy_target.
//
// The target set is loaded once (one atomic load), so a pick sees one consistent set even
// while discovery swaps in another.
func (u *Upstream) Pick(req Request, tried []*Target) *Target {
	return u.PickInto(new(Pick), req, tried, time.Now())
}

// PickInto is Pick with the balancer's argument built in p, which the caller owns (the
// proxy keeps one in its pooled per-request state): handing a *Pick to the Balancer
// interface would otherwise move a fresh one to the heap on every request. now is the time
// of the pick (the proxy passes the one it already read for the request).
func (u *Upstream) PickInto(p *Pick, req Request, tried []*Target, now time.Time) *Target {
	s := u.Current()
	*p = Pick{Req: req, tried: tried, now: now, slowStart: u.SlowStart}
	avail := 0
	for _, t := range s.Targets {
		if u.availableNow(t, now) {
			avail++
		}
	}
	n := len(s.Targets)
	panicking := u.PanicThreshold > 0 && float64(avail) < u.PanicThreshold*float64(n)
	u.notePanic(panicking, avail, n)
	if !panicking {
		if avail == 0 {
			return nil
		}
		p.checkHealth = avail < n
	}
	return s.Balancer.Pick(p)
}

// Panicking reports whether the upstream is in panic mode (balancing across all targets
// because too few are available).
func (u *Upstream) Panicking() bool { return u.panicking.Load() }

func (u *Upstream) notePanic(on bool, avail, n int) {
	if u.panicking.Load() == on || !u.panicking.CompareAndSwap(!on, on) {
		return
	}
	if on {
		u.logger().Warn("panic mode: too few available targets, balancing across all of them",
			"component", "health", "upstream", u.ID, "available", avail, "targets", n,
			"panic_threshold", u.PanicThreshold)
	} else {
		u.logger().Info("panic mode over", "component", "health", "upstream", u.ID,
			"available", avail, "targets", n)
	}
}

// Done reports the result of an attempt on t. t may have left the target set meanwhile;
// observers ignore targets they do not know.
func (u *Upstream) Done(t *Target, r Result) {
	if o, ok := u.Current().Balancer.(ResultObserver); ok {
		o.Observe(t, r)
	}
	if u.Passive != nil {
		u.Passive.Observe(t, r)
	}
}

// Admit counts a request in flight to the upstream. It returns false, counting nothing, when
// MaxRequests are already in flight: the caller answers 503 upstream_overloaded at once.
// Each true return must be paired with one [Upstream.Release] when the request ends.
func (u *Upstream) Admit() bool { return admit(&u.active, u.MaxRequests) }

// Release ends a request admitted by [Upstream.Admit].
func (u *Upstream) Release() { u.active.Add(-1) }

// AdmitRetry counts a retry in flight (call it before each attempt after the first). It
// returns false when MaxRetries are already in flight: the caller stops retrying and answers
// with the last failure (or 503 retry_limit). Pair each true return with [Upstream.ReleaseRetry].
func (u *Upstream) AdmitRetry() bool { return admit(&u.retries, u.MaxRetries) }

// ReleaseRetry ends a retry admitted by [Upstream.AdmitRetry].
func (u *Upstream) ReleaseRetry() { u.retries.Add(-1) }

// Active returns the requests and retries in flight (for metrics and the admin API).
func (u *Upstream) Active() (requests, retries int64) { return u.active.Load(), u.retries.Load() }

func admit(n *atomic.Int64, limit int64) bool {
	if v := n.Add(1); limit > 0 && v > limit {
		n.Add(-1)
		return false
	}
	return true
}

func (u *Upstream) logger() *slog.Logger {
	if u.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return u.Log
}

// Checker is an active health probe of one target. Check returns nil when the target is
// healthy; ctx carries the probe timeout. Implementations are safe for concurrent use.
type Checker interface {
	Check(ctx context.Context, t *Target) error
}
