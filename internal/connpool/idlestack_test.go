package connpool

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestIdleStackStorage runs random pushes, ordered inserts, evictions of the oldest, pops of
// the top and removals against a plain slice: the idle stack must hold the same conns in the
// same order after every step, its array must keep no reference to a conn it no longer
// holds, and a full stack that takes one conn and evicts one (a Release at MaxIdle) must keep
// its array (no allocation).
func TestIdleStackStorage(t *testing.T) {
	p := New("127.0.0.1:1", Options{Enabled: true, SweepInterval: time.Hour}, nil)
	defer p.Close(CloseShutdown)
	rng := rand.New(rand.NewPCG(1, 2))
	base := time.Now()
	var want []*Conn
	clock := 0
	newIdle := func(at int) *Conn {
		c := pipeConn(t)
		c.lastUsed = base.Add(time.Duration(at) * time.Millisecond)
		return c
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	for step := range 5000 {
		op := rng.IntN(10)
		switch {
		case op < 4 || len(want) == 0: // released: on top
			clock++
			c := newIdle(clock)
			p.pushIdleLocked(c)
			want = append(want, c)
		case op < 6: // evict the oldest
			if got := p.dropOldestLocked(); got != want[0] {
				t.Fatalf("step %d: evicted %d, want the oldest %d", step, got.ID, want[0].ID)
			}
			want = want[1:]
		case op < 7: // put back in its place (idle start between others')
			at := rng.IntN(clock + 1)
			c := newIdle(at)
			i := len(want)
			for i > 0 && want[i-1].lastUsed.After(c.lastUsed) {
				i--
			}
			p.insertIdleLocked(c)
			want = slices.Insert(want, i, c)
		case op < 8: // taken from the top
			p.popTopLocked()
			want = want[:len(want)-1]
		default: // taken or retired from the middle
			i := rng.IntN(len(want))
			p.idle = slices.Delete(p.idle, i, i+1)
			want = slices.Delete(want, i, i+1)
		}
		if !slices.Equal(p.idle, want) {
			t.Fatalf("step %d (op %d): idle stack %v, want %v", step, op, ids(p.idle), ids(want))
		}
		off := len(p.idleArr) - cap(p.idle) // the stack starts there in its array
		if off < 0 || cap(p.idle) > 0 && &p.idle[:cap(p.idle)][cap(p.idle)-1] != &p.idleArr[len(p.idleArr)-1] {
			t.Fatalf("step %d (op %d): the stack does not end where its array does", step, op)
		}
		for i, c := range p.idleArr {
			if c != nil && (i < off || i >= off+len(p.idle)) {
				t.Fatalf("step %d (op %d): the array keeps conn %d at %d, outside the stack (%d-%d)", step, op, c.ID, i, off, off+len(p.idle))
			}
		}
	}
	for len(p.idle) < 64 {
		p.pushIdleLocked(newIdle(clock))
	}
	c := newIdle(clock)
	arr := &p.idleArr[0]
	for range 1000 {
		p.pushIdleLocked(c)
		c = p.dropOldestLocked()
	}
	if &p.idleArr[0] != arr {
		t.Errorf("1000 pushes and evictions on a full stack of 64 moved it to a new array, want it kept in its own")
	}
}

func ids(cs []*Conn) []uint64 {
	out := make([]uint64, len(cs))
	for i, c := range cs {
		out[i] = c.ID
	}
	return out
}
