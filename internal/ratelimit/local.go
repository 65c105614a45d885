package ratelimit

import (
	"sync/atomic"
	"time"
)

// DefaultMaxKeys is the key cap of a local limiter when none is configured: about 10 MB of
// table at ~100 bytes a key plus the key bytes.
const DefaultMaxKeys = 100_000

// counter is a statistic counter.
type counter struct{ atomic.Int64 }

func (c *counter) add(n int64) { c.Add(n) }

// Stats are a limiter's counters since it was built. Metrics read them at scrape time.
type Stats struct {
	// Admitted and Limited count decisions (a degraded decision counts here too).
	Admitted, Limited int64
	// StoreErrors counts failed calls to the shared store (Redis); FailOpen and FailClosed
	// the decisions the failure policy made instead (including those made without calling
	// the store while it was marked down).
	StoreErrors, FailOpen, FailClosed int64
	// Keys is the number of keys held in memory (local limiters); Evictions how many keys
	// were forgotten to make room for new ones at the cap.
	Keys, Evictions int64
}

type stats struct {
	admitted, limited                 counter
	storeErrors, failOpen, failClosed counter
}

func (s *stats) count(d Decision) {
	if d.Allowed {
		s.admitted.add(1)
	} else {
		s.limited.add(1)
	}
}

func (s *stats) snapshot() Stats {
	return Stats{Admitted: s.admitted.Load(), Limited: s.limited.Load(), StoreErrors: s.storeErrors.Load(),
		FailOpen: s.failOpen.Load(), FailClosed: s.failClosed.Load()}
}

// Local is an in-memory rate limiter of one [Rule] over many keys. It is safe for
// concurrent use; a decision on a key it holds does not allocate.
type Local struct {
	rule  Rule
	t     *table
	stats stats
}

// NewLocal returns a Local limiter holding at most about maxKeys keys (0: DefaultMaxKeys).
// The rule must be valid ([Rule.Validate]).
func NewLocal(rule Rule, maxKeys int) *Local {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	l := &Local{rule: rule}
	l.t = newTable(maxKeys, l.rule.idle, false)
	return l
}

// Rule returns the limiter's rule.
func (l *Local) Rule() Rule { return l.rule }

// Allow decides one request of key at now and counts it when admitted.
func (l *Local) Allow(key []byte, now time.Time) Decision {
	return l.AllowAt(key, now.UnixNano())
}

// AllowAt is Allow with the time as Unix nanoseconds.
func (l *Local) AllowAt(key []byte, now int64) Decision {
	sh, _, i := l.t.lock(key, now)
	d := l.rule.decide(&sh.slots[i].cell, now)
	sh.mu.Unlock()
	l.stats.count(d)
	return d
}

// Stats returns the limiter's counters.
func (l *Local) Stats() Stats {
	st := l.stats.snapshot()
	st.Keys, st.Evictions = int64(l.t.len()), l.t.evictions.Load()
	return st
}

// Concurrency limits the requests in flight per key to Max. Acquire before forwarding,
// and Release the [Lease] exactly once when the response has ended, however it ended.
type Concurrency struct {
	max   int64
	t     *table
	stats stats
}

// NewConcurrency returns a Concurrency limiter of max requests in flight per key holding at
// most about maxKeys keys (0: DefaultMaxKeys). Keys with requests in flight are never
// evicted: when a new key finds its shard full of them, it is refused.
func NewConcurrency(max int64, maxKeys int) *Concurrency {
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Concurrency{max: max, t: newTable(maxKeys, func(c *cell, _ int64) bool { return c.b == 0 }, true)}
}

// Max returns the limit of requests in flight per key.
func (c *Concurrency) Max() int64 { return c.max }

// Lease is an admitted request's place; its zero value is no place (Release does nothing).
type Lease struct {
	c     *Concurrency
	shard int32
	i     int32
}

// Acquire admits a request of key if fewer than Max of key's requests are in flight.
// inFlight is the count after the decision.
func (c *Concurrency) Acquire(key []byte, now time.Time) (l Lease, inFlight int64, ok bool) {
	sh, si, i := c.t.lock(key, now.UnixNano())
	if i < 0 || sh.slots[i].cell.b >= c.max {
		if i >= 0 {
			inFlight = sh.slots[i].cell.b
		}
		sh.mu.Unlock()
		c.stats.limited.add(1)
		return Lease{}, inFlight, false
	}
	sh.slots[i].cell.b++
	inFlight = sh.slots[i].cell.b
	l = Lease{c: c, shard: int32(si), i: i}
	sh.mu.Unlock()
	c.stats.admitted.add(1)
	return l, inFlight, true
}

// Release gives the lease's place back. A slot with requests in flight is never evicted,
// so the index still names the key the lease was taken on.
func (l Lease) Release() {
	if l.c != nil {
		l.c.release(l.shard, l.i)
	}
}

// Token encodes the lease as a non-zero number, to keep in per-request state without an
// allocation; [Concurrency.ReleaseToken] releases it.
func (l Lease) Token() int64 {
	if l.c == nil {
		return 0
	}
	return 1<<62 | int64(l.shard)<<32 | int64(l.i)
}

// ReleaseToken releases the lease whose [Lease.Token] is tok (0: none).
func (c *Concurrency) ReleaseToken(tok int64) {
	if tok != 0 {
		c.release(int32(tok>>32&0xffff), int32(tok&0xffffffff))
	}
}

func (c *Concurrency) release(shard, i int32) {
	sh := &c.t.shards[shard]
	sh.mu.Lock()
	sh.slots[i].cell.b--
	sh.mu.Unlock()
}

// InFlight returns the number of key's requests in flight (for tests and views).
func (c *Concurrency) InFlight(key []byte) int64 {
	sh, _, i := c.t.lock(key, time.Now().UnixNano())
	defer sh.mu.Unlock()
	if i < 0 {
		return 0
	}
	return sh.slots[i].cell.b
}

// Stats returns the limiter's counters (Admitted: acquired leases, Limited: refusals).
func (c *Concurrency) Stats() Stats {
	st := c.stats.snapshot()
	st.Keys, st.Evictions = int64(c.t.len()), c.t.evictions.Load()
	return st
}
