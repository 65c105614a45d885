package balancer

import (
	"sync"

	"sluice/internal/upstream"
)

// LeastRequest is "power of two choices" on in-flight requests: it draws two distinct
// eligible targets at random, each with probability proportional to its effective weight, and
// takes the one with fewer in-flight requests per unit of weight. On a tie (such as an idle
// upstream) the first drawn wins, so at low load traffic follows the weights exactly, and
// under load a target with stuck requests is avoided: it loses every comparison, and two
// draws never return the same target.
type LeastRequest struct {
	targets []*upstream.Target
	bufs    sync.Pool // *[]int64 scratch weights
}

// NewLeastRequest returns a LeastRequest over targets.
func NewLeastRequest(targets []*upstream.Target) *LeastRequest {
	l := &LeastRequest{targets: targets}
	l.bufs.New = func() any { b := make([]int64, len(targets)); return &b }
	return l
}

// Pick implements upstream.Balancer.
func (l *LeastRequest) Pick(p *upstream.Pick) *upstream.Target {
	bp := l.bufs.Get().(*[]int64)
	defer l.bufs.Put(bp)
	w := *bp
	a, b := weightedTwo(p, l.targets, w)
	if a < 0 {
		return nil
	}
	if b < 0 {
		return l.targets[a]
	}
	ta, tb := l.targets[a], l.targets[b]
	// Compare inflight_a/w_a with inflight_b/w_b without division.
	if ta.InFlight.Load()*w[b] <= tb.InFlight.Load()*w[a] {
		return ta
	}
	return tb
}

var _ upstream.Balancer = (*LeastRequest)(nil)
