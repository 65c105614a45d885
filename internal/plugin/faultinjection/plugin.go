// Package faultinjection is the fault-injection plugin, for chaos tests: on a route, it
// delays a share of the requests (a fixed duration) and aborts a share (a fixed status and
// body, without contacting the upstream), so that clients' timeouts, retries and fallbacks
// can be tried against the real gateway.
//
// It runs last in the request phase (the transform stage), after access rules, auth and
// limits: an injected fault stands for the upstream being slow or failing, so a request
// the gateway would refuse (401, 429) is refused as before. An abort carries the reason
// fault_injected_abort (X-Sluice-Error, the access log, sluice_plugin_answers_total) and is
// never counted in sluice_gateway_errors_total, so nobody mistakes it for a real failure;
// sluice_fault_injections_total counts delays and aborts by route.
//
// # Choosing the requests
//
// Each fault numbers the requests it sees (an atomic counter) and takes request n when
// mix(seed, n) < percentage × 2⁶⁴, where mix is SplitMix64's finalizer: a bijection whose
// outputs for consecutive n pass as independent uniform numbers. So the share is honoured
// statistically with no lock and no allocation, successive requests are not correlated (a
// client's retry is not always spared, as with "every tenth request"), and under a fixed
// seed the number taken among requests 0..N-1 is exact whatever their order or
// concurrency: tests count without tolerance, and a chaos run can be replayed.
package faultinjection

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"strconv"
	"sync/atomic"
	"time"

	"sluice/internal/plugin"
	"sluice/internal/reason"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StageTransform, New: New})
}

// Name is the plugin's name in configs.
const Name = "fault-injection"

// maxDelay bounds a delay: longer is a typo, not a chaos test.
const maxDelay = time.Hour

// FaultInjection is one fault-injection instance.
type FaultInjection struct {
	delay      time.Duration
	delayShare share
	abort      bool
	abortShare share
	status     int
	body       []byte
	bodyType   string
	delays     atomic.Int64
	aborts     atomic.Int64
}

// share picks requests: see the package doc.
type share struct {
	n         atomic.Uint64
	seed      uint64
	threshold uint64 // taken when mix < threshold
	all       bool   // 100%: every request
}

// take numbers one more request and reports whether it is in the share.
func (s *share) take() bool {
	if s.all {
		return true
	}
	if s.threshold == 0 {
		return false
	}
	return mix(s.seed+(s.n.Add(1)-1)*0x9e3779b97f4a7c15) < s.threshold
}

// mix is SplitMix64's output function (Steele, Lea and Flood, "Fast splittable
// pseudorandom number generators", 2014).
func mix(z uint64) uint64 {
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// set makes s take pct percent (nil: 100) of the requests, numbered from seed.
func (s *share) set(pct *float64, seed uint64) {
	p := 100.0
	if pct != nil {
		p = *pct
	}
	s.seed, s.all = seed, p >= 100
	if !s.all && p > 0 {
		s.threshold = uint64(p / 100 * math.Exp2(64))
	}
}

// New builds a fault-injection instance.
func New(b *plugin.Build) (any, error) {
	var c Config
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	var errs []error
	bad := func(field, format string, args ...any) { errs = append(errs, b.Errorf(field, format, args...)) }
	if c.Delay == nil && c.Abort == nil {
		bad("", "write a delay, an abort or both")
	}
	checkPct := func(field string, p *float64) {
		if p != nil && (math.IsNaN(*p) || *p < 0 || *p > 100) {
			bad(field, "%v: want 0 to 100", *p)
		}
	}
	seed := c.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	p := &FaultInjection{}
	if d := c.Delay; d != nil {
		if d.Duration.D() <= 0 || d.Duration.D() > maxDelay {
			bad("delay.duration", "%v: want more than 0, at most %v", d.Duration.D(), maxDelay)
		}
		checkPct("delay.percentage", d.Percentage)
		p.delay = d.Duration.D()
		p.delayShare.set(d.Percentage, seed)
	}
	if a := c.Abort; a != nil {
		if a.Status < 200 || a.Status > 599 {
			bad("abort.status", "%d: want 200 to 599", a.Status)
		}
		checkPct("abort.percentage", a.Percentage)
		// Another stream than the delay's, so that the two choices are independent.
		p.abort, p.status = true, a.Status
		p.abortShare.set(a.Percentage, mix(seed^0x6a09e667f3bcc909))
		p.body, p.bodyType = []byte(a.Body), "text/plain; charset=utf-8"
		if a.Body == "" {
			p.body, p.bodyType = defaultBody(a.Status), "application/json"
		}
		if (a.Status == 204 || a.Status == 304) && a.Body != "" {
			bad("abort.body", "a %d answer has no body", a.Status)
		}
		if a.Status == 204 || a.Status == 304 {
			p.body = nil
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// defaultBody is the gateway's error body shape (docs/errors.md) for an abort.
func defaultBody(status int) []byte {
	b := []byte(`{"error":`)
	b = strconv.AppendQuote(b, string(reason.FaultAbort))
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, `,"message":`...)
	b = strconv.AppendQuote(b, reason.Describe(reason.FaultAbort))
	return append(b, "}\n"...)
}

// Request delays and aborts the requests in their shares.
func (p *FaultInjection) Request(r *plugin.Request) error {
	if p.delay > 0 && p.delayShare.take() {
		p.delays.Add(1)
		if err := wait(r, p.delay); err != nil {
			return err
		}
	}
	if p.abort && p.abortShare.take() {
		p.aborts.Add(1)
		r.AddResponseField("X-Sluice-Error", string(reason.FaultAbort))
		if len(p.body) > 0 {
			r.AddResponseField("Content-Type", p.bodyType)
		}
		return r.AnswerWithBody(p.status, reason.FaultAbort, p.body)
	}
	return nil
}

// clientCheck is how often a delay looks for a client that left (an HTTP/1.1 reset is
// only seen by looking; an HTTP/2 stream reset cancels the context at once).
const clientCheck = 100 * time.Millisecond

// wait waits d, or until the request ends (the client left, the gateway stops): then it
// returns what ends the request.
func wait(r *plugin.Request, d time.Duration) error {
	ctx := r.Context()
	t := time.NewTimer(d)
	defer t.Stop()
	tick := time.NewTicker(clientCheck)
	defer tick.Stop()
	for {
		select {
		case <-t.C:
			return nil
		case <-tick.C:
			if !r.ClientGone() {
				continue
			}
		case <-ctx.Done():
		}
		var re *reason.Error
		if errors.As(context.Cause(ctx), &re) {
			return re
		}
		return reason.New(499, reason.ClientBodyError, "", errors.New("the client left during an injected delay"))
	}
}

// PluginStats reports the faults injected: sluice_fault_injections_total{kind}.
func (p *FaultInjection) PluginStats(emit func(plugin.Stat)) {
	emit(plugin.Stat{Key: "fault_injection", Label: "delay", Value: float64(p.delays.Load())})
	emit(plugin.Stat{Key: "fault_injection", Label: "abort", Value: float64(p.aborts.Load())})
}

var (
	_ plugin.RequestFilter = (*FaultInjection)(nil)
	_ plugin.StatsReporter = (*FaultInjection)(nil)
)
