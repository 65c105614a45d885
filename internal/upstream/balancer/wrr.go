// Package balancer implements upstream.Balancer policies.
package balancer

import (
	"sync"

	"sluice/internal/upstream"
)

// WRR is smooth weighted round robin (as in nginx): every pick adds each target's weight to its
// current score, takes the highest, and subtracts the total from the winner. Over a cycle each
// target gets exactly its share, interleaved rather than in bursts.
type WRR struct {
	mu      sync.Mutex
	targets []*upstream.Target
	current []int
}

// NewWRR returns a WRR over targets (weights below 1 count as 1).
func NewWRR(targets []*upstream.Target) *WRR {
	return &WRR{targets: targets, current: make([]int, len(targets))}
}

// Pick implements upstream.Balancer.
func (w *WRR) Pick(p *upstream.Pick) *upstream.Target {
	skip := p.Skip
	if len(w.targets) == 1 {
		return w.targets[0]
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	best, total := -1, 0
	for pass := 0; pass < 2 && best < 0; pass++ {
		for i, t := range w.targets {
			if pass == 0 && skip != nil && skip(t) {
				continue
			}
			wt := max(t.Weight, 1)
			w.current[i] += wt
			total += wt
			if best < 0 || w.current[i] > w.current[best] {
				best = i
			}
		}
	}
	if best < 0 {
		return nil
	}
	w.current[best] -= total
	return w.targets[best]
}

var _ upstream.Balancer = (*WRR)(nil)
