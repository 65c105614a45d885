package health

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"sluice/internal/config"
	"sluice/internal/upstream"
)

// Defaults used when an [Active] is built in code with zero fields; config.Load applies the
// same ones to YAML.
const (
	DefaultInterval           = 10 * time.Second
	DefaultTimeout            = 2 * time.Second
	DefaultHealthyThreshold   = 2
	DefaultUnhealthyThreshold = 3
)

// ErrNoVerdict is wrapped by the error of a check that could not be made for a reason that
// says nothing of the target's health (a gRPC check that found every stream of the target's
// HTTP/2 pool taken by calls in progress): it counts neither as a failure nor as a success.
var ErrNoVerdict = errors.New("no verdict")

// Active runs periodic probes of an upstream's targets.
type Active struct {
	Upstream *upstream.Upstream
	Probe    upstream.Checker
	// Interval between probes of one target, Timeout of one probe.
	Interval, Timeout time.Duration
	// HealthyThreshold and UnhealthyThreshold are the consecutive results that flip a target.
	HealthyThreshold, UnhealthyThreshold int
	// Jitter in [0, 1) spreads the first probe over [0, Jitter×Interval) and each interval
	// over Interval × (1 ± Jitter).
	Jitter float64
}

// NewActive returns the active checker that c describes for u.
func NewActive(u *upstream.Upstream, c config.ActiveCheck) *Active {
	a := &Active{Upstream: u, Interval: c.Interval.D(), Timeout: c.Timeout.D(),
		HealthyThreshold: c.HealthyThreshold, UnhealthyThreshold: c.UnhealthyThreshold}
	if c.Jitter != nil {
		a.Jitter = *c.Jitter
	}
	switch c.Type {
	case "tcp":
		a.Probe = TCPProbe{}
	case "grpc":
		a.Probe = GRPCProbe{Service: c.Service, Host: c.Host}
	default:
		a.Probe = &HTTPProbe{Path: c.Path, Host: c.Host, Expected: c.ExpectedStatuses, BodyContains: c.BodyContains}
	}
	return a
}

// Run probes every target until ctx is canceled, one goroutine per target, and returns when
// all of them have stopped. It follows the upstream's target set: a target that joins gets
// a probe goroutine, one that leaves has its goroutine stopped.
func (a *Active) Run(ctx context.Context) {
	var wg sync.WaitGroup
	running := map[*upstream.Target]context.CancelFunc{}
	defer func() {
		for _, stop := range running {
			stop()
		}
		wg.Wait()
	}()
	for {
		s := a.Upstream.Current()
		keep := make(map[*upstream.Target]bool, len(s.Targets))
		for _, t := range s.Targets {
			keep[t] = true
			if _, ok := running[t]; !ok {
				tctx, stop := context.WithCancel(ctx)
				running[t] = stop
				wg.Go(func() { a.watch(tctx, t) })
			}
		}
		for t, stop := range running {
			if !keep[t] {
				stop()
				delete(running, t)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-s.Replaced():
		}
	}
}

func (a *Active) watch(ctx context.Context, t *upstream.Target) {
	interval := orDefault(a.Interval, DefaultInterval)
	timeout := orDefault(a.Timeout, DefaultTimeout)
	healthyN := orDefault(a.HealthyThreshold, DefaultHealthyThreshold)
	unhealthyN := orDefault(a.UnhealthyThreshold, DefaultUnhealthyThreshold)
	timer := time.NewTimer(a.spread(0, interval))
	defer timer.Stop()
	ok, bad := 0, 0
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		pctx, cancel := context.WithTimeout(ctx, timeout)
		err := a.Probe.Check(pctx, t)
		cancel()
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, ErrNoVerdict): // the streaks stand
		case err == nil:
			ok, bad = ok+1, 0
			// From unknown one success is enough: the target was getting traffic anyway.
			if ok >= healthyN || t.Health().State == upstream.StateUnknown {
				a.Upstream.SetActive(t, true, fmt.Sprintf("active check passed %d time(s) in a row", ok))
			}
		default:
			ok, bad = 0, bad+1
			if bad >= unhealthyN {
				a.Upstream.SetActive(t, false, fmt.Sprintf("active check failed %d time(s) in a row: %v", bad, err))
			}
		}
		timer.Reset(a.spread(interval, interval))
	}
}

// spread returns base ± Jitter×span at random (never negative): base 0 spreads the first
// probe over [0, Jitter×span).
func (a *Active) spread(base, span time.Duration) time.Duration {
	j := a.Jitter
	if j <= 0 {
		return base
	}
	if base == 0 {
		return time.Duration(rand.Float64() * j * float64(span))
	}
	return max(base+time.Duration((2*rand.Float64()-1)*j*float64(span)), 0)
}

func orDefault[T int | time.Duration](v, d T) T {
	if v <= 0 {
		return d
	}
	return v
}
