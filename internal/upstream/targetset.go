package upstream

// Target sets that change at runtime.
//
// An upstream's targets and the balancer over them form one immutable [TargetSet], held in an
// atomic pointer: a pick loads it once and works on that version, without locks, however
// often discovery swaps in another. A [Membership] builds those versions for an upstream
// whose targets come (in part) from names that resolve to changing address sets: each name
// contributes the targets of its last resolution, static targets stay, and every change
// builds a new balancer over the union and swaps it in.
//
// A removed target is drained, not cut: requests that picked it before the swap finish on
// it. Its pool is released (and closed once nothing else holds it) only after the target
// is idle — no request counted in InFlight, no connection checked out, nobody waiting for
// one — and at least Settle after the swap (a request may have picked the target just before
// the swap and not reached the pool yet); Grace bounds the wait. A closed pool still lets
// checked-out connections finish, so even the Grace bound cuts nothing in flight.

import (
	"slices"
	"sync"
	"time"

	"sluice/internal/connpool"
	"sluice/internal/h2pool"
)

// TargetSet is one version of an upstream's targets with the balancer over them. It is
// never changed once published; a change publishes a new one (see [Upstream.Swap]).
type TargetSet struct {
	Targets  []*Target
	Balancer Balancer

	replaced chan struct{} // closed when a newer set replaces this one
}

// Replaced returns a channel that is closed when a newer set replaces s (nil for a set that
// is never replaced, which blocks forever).
func (s *TargetSet) Replaced() <-chan struct{} { return s.replaced }

// Current returns the upstream's target set now in force: the last one given to
// [Upstream.Swap], or an empty set (no targets, no balancer) before the first Swap.
func (u *Upstream) Current() *TargetSet {
	if s := u.set.Load(); s != nil {
		return s
	}
	s := &TargetSet{replaced: make(chan struct{})}
	if u.set.CompareAndSwap(nil, s) {
		return s
	}
	return u.set.Load()
}

// Swap publishes targets, with the balancer b over them, as the upstream's set. Picks that
// already loaded the previous set finish with it. Callers serialize their Swaps
// ([Membership] does); Swap is safe to call while Pick and Done run.
func (u *Upstream) Swap(targets []*Target, b Balancer) {
	next := &TargetSet{Targets: targets, Balancer: b, replaced: make(chan struct{})}
	if old := u.set.Swap(next); old != nil {
		close(old.replaced)
	}
}

// Endpoint is one address a name resolved to, with its weight.
type Endpoint struct {
	// Addr is host:port with an IP address as host.
	Addr   string
	Weight int
}

// DefaultDrainPoll is how often a draining target is checked for idleness.
const DefaultDrainPoll = 50 * time.Millisecond

// Membership keeps an upstream's target set in step with the addresses its names resolve
// to. Set the fields, add static targets with [Membership.AddStatic], then call
// [Membership.Update] for each name whenever its resolution changes. [Membership.Close]
// stops draining and releases every pool it acquired. Methods are safe for concurrent use.
type Membership struct {
	Upstream *Upstream
	// NewBalancer builds the upstream's balancer over a set of targets.
	NewBalancer func([]*Target) (Balancer, error)
	// Acquire returns the pool for addr, an address that name resolved to (a carried-over
	// pool when possible; the name decides the pool's TLS server name). Each call is paired
	// with one Release of the same name and address once no target uses the pool any more.
	Acquire func(name, addr string) *connpool.Pool
	Release func(name, addr string)
	// AcquireH2, when non-nil, returns the HTTP/2 pool for addr after Acquire (nil for an
	// HTTP/1.1 upstream); Release drops it with the pool.
	AcquireH2 func(name, addr string) *h2pool.Pool
	// Joined, when non-nil, is called for each target new to the set before it is
	// published: it may carry health over (Target.Inherit) or start slow start.
	Joined func(t *Target)
	// Settle is the least time a removed target waits before its pool is released; Grace
	// bounds the wait for its requests (0: release as soon as Settle has passed).
	Settle, Grace time.Duration

	mu     sync.Mutex
	static []*Target
	names  []string // in the order of first Update
	byName map[string][]*Target
	closed bool
	stop   chan struct{}
	drains sync.WaitGroup
}

// AddStatic adds a target that no name controls (an IP address in the config). Call it
// before the first Update.
func (m *Membership) AddStatic(t *Target) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.static = append(m.static, t)
}

// Update makes eps the addresses of name and publishes the resulting set. Targets whose
// address and weight are unchanged are kept as they are (pool, health, balancer state); a
// changed weight makes a new target that inherits the old one's health. It returns the
// addresses that joined and left the set. After Close it does nothing.
func (m *Membership) Update(name string, eps []Endpoint) (added, removed []string, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, nil, nil
	}
	if m.byName == nil {
		m.byName, m.stop = map[string][]*Target{}, make(chan struct{})
	}
	old, known := m.byName[name]
	if !known {
		m.names = append(m.names, name)
	}
	prev := make(map[string]*Target, len(old))
	for _, t := range old {
		prev[t.Addr] = t
	}
	var next, fresh []*Target
	seen := make(map[string]bool, len(eps))
	for _, e := range eps {
		if seen[e.Addr] {
			continue
		}
		seen[e.Addr] = true
		pt, ok := prev[e.Addr]
		if ok && pt.Weight == max(e.Weight, 1) {
			next = append(next, pt)
			continue
		}
		t := &Target{Addr: e.Addr, Weight: max(e.Weight, 1), Name: name, Pool: m.Acquire(name, e.Addr)}
		if m.AcquireH2 != nil {
			t.H2 = m.AcquireH2(name, e.Addr)
		}
		if ok {
			t.Inherit(pt)
		} else {
			added = append(added, e.Addr)
			if m.Joined != nil {
				m.Joined(t)
			}
		}
		fresh = append(fresh, t)
		next = append(next, t)
	}
	m.byName[name] = next
	if err := m.publishLocked(); err != nil {
		m.byName[name] = old
		for _, t := range fresh {
			m.Release(name, t.Addr)
		}
		return nil, nil, err
	}
	for _, t := range old {
		if !seen[t.Addr] {
			removed = append(removed, t.Addr)
		}
		if !slices.Contains(next, t) {
			m.drain(t)
		}
	}
	return added, removed, nil
}

// Endpoints returns the current addresses of name (to seed the next generation).
func (m *Membership) Endpoints(name string) (eps []Endpoint, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	ts, ok := m.byName[name]
	for _, t := range ts {
		eps = append(eps, Endpoint{Addr: t.Addr, Weight: t.Weight})
	}
	return eps, ok
}

// Close stops draining (releasing drained pools at once), and releases the pools of every
// target that names contributed. The upstream keeps its last set. Close is idempotent.
func (m *Membership) Close() {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return
	}
	m.closed = true
	if m.stop != nil {
		close(m.stop)
	}
	var held []*Target
	for _, ts := range m.byName {
		held = append(held, ts...)
	}
	m.mu.Unlock()
	m.drains.Wait()
	for _, t := range held {
		m.Release(t.Name, t.Addr)
	}
}

func (m *Membership) publishLocked() error {
	targets := append([]*Target(nil), m.static...)
	for _, n := range m.names {
		targets = append(targets, m.byName[n]...)
	}
	b, err := m.NewBalancer(targets)
	if err != nil {
		return err
	}
	m.Upstream.Swap(targets, b)
	return nil
}

// drain releases t's pool once t is idle, at least Settle and at most Settle+Grace from now,
// or at once when the membership closes.
func (m *Membership) drain(t *Target) {
	stop := m.stop
	m.drains.Go(func() {
		defer m.Release(t.Name, t.Addr)
		deadline := time.Now().Add(m.Settle + m.Grace)
		timer := time.NewTimer(m.Settle)
		defer timer.Stop()
		for {
			select {
			case <-stop:
				return
			case <-timer.C:
			}
			if idle(t) || !time.Now().Before(deadline) {
				return
			}
			timer.Reset(DefaultDrainPoll)
		}
	})
}

// idle reports whether no request uses t: none counted in flight, no connection of its pool
// checked out and none waited for.
func idle(t *Target) bool {
	if t.InFlight.Load() != 0 {
		return false
	}
	if t.Pool == nil {
		return true
	}
	s := t.Pool.Snapshot()
	if s.Waiting > 0 {
		return false
	}
	for _, c := range s.Conns {
		if c.State == "in_use" {
			return false
		}
	}
	return true
}
