package balancer

// Peak EWMA (as in Finagle and Linkerd): each target keeps an exponentially weighted moving
// average of its response latency, with a decay time constant tau (weight of the old average
// after dt: exp(-dt/tau)). A sample above the average replaces it at once ("peak"), so a
// target that slows down is avoided immediately, while recovery is believed only gradually.
// The cost of a target is its average, decayed towards zero since the last sample (so that
// an idle target is tried again eventually), times (in-flight + 1). A pick draws two targets
// as LeastRequest does (with probability proportional to effective weight, so weights and
// slow start bias which targets are compared) and takes the cheaper; on a tie (no latency
// known yet) the first drawn wins, so an unmeasured upstream follows the weights.
// A failed attempt counts as a sample of FailurePenalty (or its latency, if longer).

import (
	"math"
	"sync"
	"time"

	"sluice/internal/upstream"
)

// DefaultDecay is the EWMA time constant.
const DefaultDecay = 10 * time.Second

// FailurePenalty is the latency sample recorded for a failed attempt.
const FailurePenalty = time.Second

// EWMA is the peak-EWMA latency balancer. It implements upstream.ResultObserver: the
// upstream feeds it every attempt's result.
type EWMA struct {
	targets []*upstream.Target
	stats   map[*upstream.Target]*ewmaStat // read-only after New
	tau     float64                        // nanoseconds
	bufs    sync.Pool
}

type ewmaStat struct {
	mu    sync.Mutex
	avg   float64 // nanoseconds
	stamp time.Time
}

// NewEWMA returns an EWMA over targets with decay time constant tau.
func NewEWMA(targets []*upstream.Target, tau time.Duration) *EWMA {
	e := &EWMA{targets: targets, stats: make(map[*upstream.Target]*ewmaStat, len(targets)), tau: float64(tau)}
	for _, t := range targets {
		e.stats[t] = &ewmaStat{}
	}
	e.bufs.New = func() any { b := make([]int64, len(targets)); return &b }
	return e
}

// Observe implements upstream.ResultObserver.
func (e *EWMA) Observe(t *upstream.Target, r upstream.Result) {
	s := e.stats[t]
	if s == nil {
		return
	}
	rtt := r.Latency
	if r.Failed {
		rtt = max(rtt, FailurePenalty)
	}
	now := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	if x := float64(rtt); x > s.avg {
		s.avg = x
	} else {
		w := math.Exp(-float64(now.Sub(s.stamp)) / e.tau)
		s.avg = s.avg*w + x*(1-w)
	}
	s.stamp = now
}

// Latency returns t's current average (decayed to now), for tests and the admin API.
func (e *EWMA) Latency(t *upstream.Target) time.Duration {
	return time.Duration(e.decayed(e.stats[t], time.Now()))
}

func (e *EWMA) decayed(s *ewmaStat, now time.Time) float64 {
	if s == nil {
		return 0
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stamp.IsZero() {
		return 0
	}
	return s.avg * math.Exp(-float64(now.Sub(s.stamp))/e.tau)
}

// Pick implements upstream.Balancer.
func (e *EWMA) Pick(p *upstream.Pick) *upstream.Target {
	bp := e.bufs.Get().(*[]int64)
	defer e.bufs.Put(bp)
	w := *bp
	a, b := weightedTwo(p, e.targets, w)
	if a < 0 {
		return nil
	}
	if b < 0 {
		return e.targets[a]
	}
	now := time.Now()
	if e.cost(e.targets[a], now) <= e.cost(e.targets[b], now) {
		return e.targets[a]
	}
	return e.targets[b]
}

// cost is latency × load; +1ns keeps in-flight counts meaningful before any latency is known.
func (e *EWMA) cost(t *upstream.Target, now time.Time) float64 {
	return (e.decayed(e.stats[t], now) + 1) * float64(t.InFlight.Load()+1)
}

var (
	_ upstream.Balancer       = (*EWMA)(nil)
	_ upstream.ResultObserver = (*EWMA)(nil)
)
