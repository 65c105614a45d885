// Package balancer implements the upstream.Balancer policies: smooth weighted round robin
// ([WRR]), least request by power of two choices ([LeastRequest]), peak-EWMA latency ([EWMA])
// and consistent hashing ([Hash]). Every policy asks the upstream.Pick which targets are
// eligible (health, retries) and what their effective weight is (slow start), so those rules
// live in one place.
package balancer

import (
	"fmt"
	"math/rand/v2"

	"sluice/internal/config"
	"sluice/internal/upstream"
)

// Policy names of config.Balancer.Policy.
const (
	PolicyRoundRobin   = "round_robin"
	PolicyLeastRequest = "least_request"
	PolicyEWMA         = "ewma"
	PolicyHash         = "hash"
)

// New returns the balancer that cfg names over targets. cfg is expected to be validated.
func New(cfg config.Balancer, targets []*upstream.Target) (upstream.Balancer, error) {
	switch cfg.Policy {
	case "", PolicyRoundRobin:
		return NewWRR(targets), nil
	case PolicyLeastRequest:
		return NewLeastRequest(targets), nil
	case PolicyEWMA:
		return NewEWMA(targets, DefaultDecay), nil
	case PolicyHash:
		key, err := KeyFunc(cfg.HashOn, cfg.HashKey)
		if err != nil {
			return nil, err
		}
		return NewHash(targets, key), nil
	}
	return nil, fmt.Errorf("unknown balancer policy %q", cfg.Policy)
}

// weightedTwo draws two distinct eligible targets, each with probability proportional to
// its effective weight (the second from those left). It returns -1 for a candidate it could
// not draw; a is -1 only when no target is eligible.
func weightedTwo(p *upstream.Pick, targets []*upstream.Target, w []int64) (a, b int) {
	a, b = -1, -1
	for pass := 0; pass < 2 && a < 0; pass++ {
		var total int64
		for i, t := range targets {
			w[i] = 0
			if p.Eligible(t, pass == 0) {
				w[i] = p.Weight(t)
				total += w[i]
			}
		}
		if total == 0 {
			continue
		}
		a = draw(w, rand.Int64N(total))
		total -= w[a]
		if total > 0 {
			saved := w[a]
			w[a] = 0
			b = draw(w, rand.Int64N(total))
			w[a] = saved
		}
	}
	return a, b
}

func draw(w []int64, r int64) int {
	for i, x := range w {
		if r < x {
			return i
		}
		r -= x
	}
	return len(w) - 1
}
