package probe

import (
	"context"
	"fmt"
	"io"
	"sync"

	"sluice/internal/config"
)

// DefaultParallel bounds how many targets [CheckConfig] probes at once.
const DefaultParallel = 8

// UpstreamCheck is the probe of every target of one upstream, judged against the upstream's
// keepalive settings.
type UpstreamCheck struct {
	Upstream string `json:"upstream"`
	// Keepalive, IdleTimeout, SafetyFraction and Learn are the configured settings.
	Keepalive      bool          `json:"keepalive_enabled"`
	IdleTimeout    Duration      `json:"configured_idle_timeout_ms"`
	SafetyFraction float64       `json:"safety_fraction"`
	Learn          bool          `json:"learn"`
	Targets        []TargetCheck `json:"targets"`
	// Failed reports that a target is misconfigured against (Risky) or could not be probed.
	Failed bool `json:"failed"`
}

// TargetCheck is the probe of one target.
type TargetCheck struct {
	Address string  `json:"address"`
	Result  *Result `json:"result,omitempty"`
	// Error says why the target could not be probed.
	Error string `json:"error,omitempty"`
	// Risky reports the Higress misconfiguration: the configured idle timeout is not below
	// safety_fraction x the measured one. Problem explains it.
	Risky          bool           `json:"risky"`
	Problem        string         `json:"problem,omitempty"`
	Recommendation Recommendation `json:"recommendation"`
}

// CheckConfig probes every target of every upstream of c, at most parallel at a time
// (0: [DefaultParallel]), and judges each against its upstream's keepalive settings. c must
// have its defaults applied, as [config.Load] does.
func CheckConfig(ctx context.Context, c *config.Config, o Options, parallel int) []UpstreamCheck {
	if parallel <= 0 {
		parallel = DefaultParallel
	}
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	out := make([]UpstreamCheck, len(c.Upstreams))
	for i, u := range c.Upstreams {
		k := u.Keepalive
		out[i] = UpstreamCheck{Upstream: u.ID, Keepalive: *k.Enabled, IdleTimeout: Duration(k.IdleTimeout.D()),
			SafetyFraction: *k.SafetyFraction, Learn: *k.Learn, Targets: make([]TargetCheck, len(u.Targets))}
		for j, t := range u.Targets {
			uc, tc := &out[i], &out[i].Targets[j]
			tc.Address = t.Address
			wg.Go(func() {
				select {
				case sem <- struct{}{}:
				case <-ctx.Done():
					tc.Error = ctx.Err().Error()
					return
				}
				defer func() { <-sem }()
				o := o
				if u.TLSOn() {
					if o.UpstreamTLS == nil {
						tc.Error = "a TLS upstream: no TLS settings to probe it with"
						return
					}
					var err error
					if o.TLS, err = o.UpstreamTLS(u, t.Address); err != nil {
						tc.Error = err.Error()
						return
					}
				}
				res, err := Probe(ctx, t.Address, o)
				if err != nil {
					tc.Error = err.Error()
					return
				}
				tc.Result = res
				uc.judge(tc)
			})
		}
	}
	wg.Wait()
	for i := range out {
		for _, t := range out[i].Targets {
			out[i].Failed = out[i].Failed || t.Risky || t.Error != ""
		}
	}
	return out
}

// judge flags tc when the configured idle timeout would outlive the backend's connections.
func (uc *UpstreamCheck) judge(tc *TargetCheck) {
	r := tc.Result
	tc.Recommendation = Recommend(r, uc.SafetyFraction)
	if !uc.Keepalive || !r.KeepsAlive || r.Idle == nil || !r.Idle.Observed {
		return
	}
	safe := SafeIdleTimeout(r.Idle.Timeout.D(), uc.SafetyFraction)
	if uc.IdleTimeout.D() <= safe {
		return
	}
	tc.Risky = true
	tc.Problem = fmt.Sprintf("keepalive.idle_timeout %s is above %g x the backend's idle timeout %s (= %s): pooled connections will be reused after the backend closed them; set idle_timeout: %s",
		config.Duration(uc.IdleTimeout), uc.SafetyFraction, fmtDur(r.Idle.Timeout.D()), fmtDur(safe), config.Duration(tc.Recommendation.IdleTimeout))
	if uc.Learn {
		tc.Problem += " (learning narrows this gap only after the backend has closed connections)"
	}
}

// WriteCheckText writes the human report of a config check.
func WriteCheckText(w io.Writer, checks []UpstreamCheck) {
	failed := 0
	for _, uc := range checks {
		state := "ok"
		if uc.Failed {
			state = "PROBLEM"
			failed++
		}
		ka := fmt.Sprintf("keepalive.idle_timeout %s, safety_fraction %g", config.Duration(uc.IdleTimeout), uc.SafetyFraction)
		if !uc.Keepalive {
			ka = "keepalive disabled"
		}
		fmt.Fprintf(w, "upstream %s (%s): %s\n", uc.Upstream, ka, state)
		for _, tc := range uc.Targets {
			fmt.Fprintf(w, "  %s: %s\n", tc.Address, describeTarget(&tc))
		}
	}
	fmt.Fprintf(w, "%d of %d upstreams with problems\n", failed, len(checks))
}

func describeTarget(tc *TargetCheck) string {
	switch r := tc.Result; {
	case tc.Error != "":
		return "UNREACHABLE: " + tc.Error
	case !r.KeepsAlive:
		return "does not keep connections alive (" + r.NoKeepAlive + "); consider keepalive.enabled: false"
	case tc.Risky:
		return "RISK: " + tc.Problem
	default:
		return fmt.Sprintf("%s; %s", describeIdle(r.Idle), describeLimit(r.Limit))
	}
}
