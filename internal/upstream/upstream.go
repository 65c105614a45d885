// Package upstream holds the runtime form of an upstream: its targets, each with its
// connection pool, and the balancer that picks one per attempt.
package upstream

import (
	"sync/atomic"
	"time"

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

// Request is what a balancer may know about the request being balanced.
type Request interface {
	ClientIP() string
	// URI is the path and query as received.
	URI() string
	HeaderValue(name string) (string, bool)
	QueryValue(name string) (string, bool)
	CookieValue(name string) (string, bool)
}

// Pick is one balancing decision.
type Pick struct {
	// Req is the request (may be nil in tests).
	Req Request
	// Skip, when non-nil, reports targets to avoid (already tried); a balancer returns a
	// skipped target only when no other target remains.
	Skip func(*Target) bool
}

// Balancer picks a target for an attempt. Implementations are safe for concurrent use and
// return nil only when the upstream has no targets.
type Balancer interface {
	Pick(p *Pick) *Target
}

// Result is what happened on one attempt, reported back so that balancers and health
// checks can learn from real traffic.
type Result struct {
	Latency time.Duration
	// Failed: a connect failure, reset, timeout or gateway-generated 5xx for this target.
	Failed bool
	// Status is the backend's response status (0 when there was none).
	Status int
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

// Pick returns a target for req, avoiding those in tried when another one exists.
func (u *Upstream) Pick(req Request, tried []*Target) *Target {
	p := Pick{Req: req}
	if len(tried) > 0 {
		p.Skip = func(t *Target) bool {
			for _, x := range tried {
				if x == t {
					return true
				}
			}
			return false
		}
	}
	return u.Balancer.Pick(&p)
}

// Done reports the result of an attempt on t.
func (u *Upstream) Done(t *Target, r Result) {}
