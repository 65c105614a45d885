package upstream

import (
	"slices"
	"sync"
	"testing"
	"time"

	"sluice/internal/connpool"
	"sluice/internal/testutil"
)

// firstBalancer picks the first eligible target.
type firstBalancer struct{ ts []*Target }

func (b firstBalancer) Pick(p *Pick) *Target {
	for _, t := range b.ts {
		if p.Eligible(t, false) {
			return t
		}
	}
	return nil
}

// poolLedger hands out pools and records releases.
type poolLedger struct {
	mu       sync.Mutex
	held     map[string]int
	released []string
}

func (l *poolLedger) acquire(_, addr string) *connpool.Pool {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[addr]++
	return connpool.New(addr, connpool.Options{}, nil)
}

func (l *poolLedger) release(_, addr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held[addr]--
	l.released = append(l.released, addr)
}

func (l *poolLedger) wasReleased(addr string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Contains(l.released, addr)
}

func addrs(ts []*Target) []string {
	var out []string
	for _, t := range ts {
		out = append(out, t.Addr)
	}
	return out
}

func TestMembership(t *testing.T) {
	u := &Upstream{ID: "u"}
	l := &poolLedger{held: map[string]int{}}
	var joined []string
	m := &Membership{Upstream: u,
		NewBalancer: func(ts []*Target) (Balancer, error) { return firstBalancer{ts}, nil },
		Acquire:     l.acquire, Release: l.release,
		Joined: func(t *Target) { joined = append(joined, t.Addr) },
		Settle: 20 * time.Millisecond, Grace: 2 * time.Second}
	static := &Target{Addr: "10.0.0.9:80", Weight: 1}
	m.AddStatic(static)
	if got := u.Pick(nil, nil); got != nil {
		t.Fatalf("pick before any update: %v", got)
	}

	added, removed, err := m.Update("svc:80", []Endpoint{{Addr: "10.0.0.1:80", Weight: 1}, {Addr: "10.0.0.2:80", Weight: 1}})
	if err != nil || !slices.Equal(added, []string{"10.0.0.1:80", "10.0.0.2:80"}) || removed != nil {
		t.Fatalf("first update: added %v removed %v err %v", added, removed, err)
	}
	s1 := u.Current()
	if got := addrs(s1.Targets); !slices.Equal(got, []string{"10.0.0.9:80", "10.0.0.1:80", "10.0.0.2:80"}) {
		t.Fatalf("set %v", got)
	}
	if u.Pick(nil, nil) != static {
		t.Error("pick does not use the published balancer")
	}

	// Unchanged addresses keep their targets; nothing is published as news.
	added, removed, _ = m.Update("svc:80", []Endpoint{{Addr: "10.0.0.2:80", Weight: 1}, {Addr: "10.0.0.1:80", Weight: 1}})
	if added != nil || removed != nil {
		t.Errorf("same addresses: added %v removed %v", added, removed)
	}
	select {
	case <-s1.Replaced():
	default:
		t.Error("old set not marked replaced")
	}
	if s2 := u.Current(); !slices.Contains(s2.Targets, s1.Targets[1]) || !slices.Contains(s2.Targets, s1.Targets[2]) {
		t.Error("unchanged addresses got new targets")
	}

	// A removed target with a request in flight keeps its pool until the request ends.
	leaving := s1.Targets[1]
	leaving.InFlight.Add(1)
	_, removed, _ = m.Update("svc:80", []Endpoint{{Addr: "10.0.0.2:80", Weight: 1}})
	if !slices.Equal(removed, []string{"10.0.0.1:80"}) {
		t.Fatalf("removed %v", removed)
	}
	if slices.Contains(u.Current().Targets, leaving) {
		t.Fatal("removed target still in the set")
	}
	// Nothing to wait for: the check is that nothing happens over 5 × Settle, where a drain
	// that ignored InFlight would have released the pool.
	time.Sleep(100 * time.Millisecond)
	if l.wasReleased("10.0.0.1:80") {
		t.Fatal("pool released while a request was in flight")
	}
	leaving.InFlight.Add(-1)
	testutil.WaitFor(t, 2*time.Second, "the pool's release after the request ended",
		func() bool { return l.wasReleased("10.0.0.1:80") })

	// A weight change makes a new target for the same address, with the old one's health.
	old := u.Current().Targets[1]
	u.SetActive(old, false, "test")
	_, _, _ = m.Update("svc:80", []Endpoint{{Addr: "10.0.0.2:80", Weight: 5}})
	nt := u.Current().Targets[1]
	if nt == old || nt.Weight != 5 || nt.Health().State != StateUnhealthy {
		t.Errorf("weight change: new target %v weight %d health %v", nt != old, nt.Weight, nt.Health().State)
	}

	m.Close()
	l.mu.Lock()
	defer l.mu.Unlock()
	for a, n := range l.held {
		if n != 0 {
			t.Errorf("after Close, %s still held %d time(s)", a, n)
		}
	}
	if !slices.Equal(joined, []string{"10.0.0.1:80", "10.0.0.2:80"}) {
		t.Errorf("Joined called for %v", joined)
	}
}
