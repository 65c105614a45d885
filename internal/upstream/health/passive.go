package health

import (
	"fmt"
	"time"

	"sluice/internal/config"
	"sluice/internal/upstream"
)

// Passive defaults for an [Passive] built in code with zero fields.
const (
	DefaultConsecutiveFailures = 5
	DefaultBaseEjection        = 30 * time.Second
	DefaultMaxEjection         = 300 * time.Second
)

// Passive is outlier ejection from real results. It implements upstream.ResultObserver;
// set it as the upstream's Passive.
type Passive struct {
	Upstream *upstream.Upstream
	// ConsecutiveFailures in a row eject a target.
	ConsecutiveFailures int
	// Count5xx also counts backend 5xx responses as failures.
	Count5xx bool
	// BaseEjection × (recent ejections), capped at MaxEjection, is an ejection's length.
	BaseEjection, MaxEjection time.Duration
}

// NewPassive returns the passive checker that c describes for u.
func NewPassive(u *upstream.Upstream, c config.PassiveCheck) *Passive {
	p := &Passive{Upstream: u, ConsecutiveFailures: c.ConsecutiveFailures, Count5xx: true,
		BaseEjection: c.BaseEjection.D(), MaxEjection: c.MaxEjection.D()}
	if c.Count5xx != nil {
		p.Count5xx = *c.Count5xx
	}
	return p
}

// Observe implements upstream.ResultObserver.
func (p *Passive) Observe(t *upstream.Target, r upstream.Result) {
	if !r.Failed && !(p.Count5xx && r.Status >= 500) {
		if t.ConsecutiveFailures.Load() != 0 {
			t.ConsecutiveFailures.Store(0)
		}
		return
	}
	n := t.ConsecutiveFailures.Add(1)
	if n < int64(orDefault(p.ConsecutiveFailures, DefaultConsecutiveFailures)) {
		return
	}
	t.ConsecutiveFailures.Store(0)
	why := fmt.Sprintf("%d consecutive failures", n)
	if r.Failed {
		why += " (last: gateway-side failure)"
	} else {
		why += fmt.Sprintf(" (last: status %d)", r.Status)
	}
	base := orDefault(p.BaseEjection, DefaultBaseEjection)
	p.Upstream.Eject(t, base, max(orDefault(p.MaxEjection, DefaultMaxEjection), base), why)
}

var _ upstream.ResultObserver = (*Passive)(nil)
