// Package upstream holds the runtime form of an upstream: its targets, each with its
// connection pool, and the balancer that picks one per attempt.
package upstream

import (
	"sync/atomic"

	"sluice/internal/config"
	"sluice/internal/connpool"
)

// Target is one backend address of an upstream and the pool of connections to it.
type Target struct {
	Addr   string
	Weight int
	Pool   *connpool.Pool
	// InFlight counts requests being served by this target (for balancers and the admin API).
	InFlight atomic.Int64
}

// Balancer picks a target for an attempt. Implementations are safe for concurrent use.
// Pick must skip targets for which skip returns true when any other target remains, and
// return nil only when there are no targets.
type Balancer interface {
	Pick(skip func(*Target) bool) *Target
}

// Upstream is a named target group with its balancer and default timeouts.
type Upstream struct {
	ID       string
	Targets  []*Target
	Balancer Balancer
	Timeouts config.Timeouts
	// KeepAlive mirrors keepalive.enabled; false adds "Connection: close" upstream.
	KeepAlive bool
}

// Pick returns a target, avoiding those in tried when another one exists.
func (u *Upstream) Pick(tried []*Target) *Target {
	if len(tried) == 0 {
		return u.Balancer.Pick(nil)
	}
	return u.Balancer.Pick(func(t *Target) bool {
		for _, x := range tried {
			if x == t {
				return true
			}
		}
		return false
	})
}
