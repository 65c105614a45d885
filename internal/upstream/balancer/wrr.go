package balancer

import (
	"sync"

	"sluice/internal/upstream"
)

// WRR is smooth weighted round robin (as in nginx): every pick adds each eligible target's
// effective weight to its current score, takes the highest, and subtracts the total from the
// winner. Over a cycle each target gets exactly its share, interleaved rather than in bursts.
// Unavailable and already-tried targets take no part in the round, so the others share their
// traffic in proportion to their weights.
type WRR struct {
	mu      sync.Mutex
	targets []*upstream.Target
	current []int64
}

// NewWRR returns a WRR over targets (weights below 1 count as 1).
func NewWRR(targets []*upstream.Target) *WRR {
	return &WRR{targets: targets, current: make([]int64, len(targets))}
}

// Pick implements upstream.Balancer.
func (w *WRR) Pick(p *upstream.Pick) *upstream.Target {
	if len(w.targets) == 1 {
		if t := w.targets[0]; p.Eligible(t, false) {
			return t
		}
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	best := -1
	var total int64
	for pass := 0; pass < 2 && best < 0; pass++ {
		for i, t := range w.targets {
			if !p.Eligible(t, pass == 0) {
				continue
			}
			wt := p.Weight(t)
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
