package connpool

import (
	"context"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestPreconnectedTakenFirst: a preconnected conn no request used yet is taken before the
// top of the idle stack wherever it sits, the youngest first (refreshLocked), and once none
// is left requests take the top again. The pool looks for one only while one may be there
// (mayPre), so a preconnect that lands below conns released after it must still be found.
func TestPreconnectedTakenFirst(t *testing.T) {
	be := testutil.Echo(t)
	p := newPool(t, be.Addr(), nil)
	ctx := context.Background()
	ok := Outcome{Reusable: true, KeepAliveMax: -1}
	used := make([]*Conn, 2)
	for i := range used {
		c, err := p.Get(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		used[i] = c
	}
	var pre []uint64
	for range 2 {
		pre = append(pre, preconnectOne(t, p).ID)
	}
	for _, c := range used {
		p.Release(c, ok) // the idle stack: pre[0], pre[1], used[0], used[1] (top)
	}
	for i, want := range []uint64{pre[1], pre[0], used[1].ID, used[0].ID} {
		c, err := p.Get(ctx, true)
		if err != nil {
			t.Fatal(err)
		}
		if c.ID != want {
			t.Fatalf("checkout %d took conn %d, want %d (preconnected %v, used %d and %d)", i, c.ID, want, pre, used[0].ID, used[1].ID)
		}
		defer p.Release(c, ok)
	}
	if s := p.Snapshot().Counters; s.PreconnectsUsed != 2 || s.Opened != 4 {
		t.Errorf("preconnects used %d, opened %d; want 2 and 4", s.PreconnectsUsed, s.Opened)
	}
}

// preconnectOne opens a preconnected conn as the sweeper does and waits for it to land on top
// of the idle stack.
func preconnectOne(t *testing.T, p *Pool) *Conn {
	t.Helper()
	p.mu.Lock()
	n := len(p.idle)
	p.startPreconnectLocked(time.Now())
	p.mu.Unlock()
	testutil.WaitFor(t, 5*time.Second, "the preconnect to land on the idle stack", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.idle) == n+1
	})
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.idle[len(p.idle)-1]
}

// TestPreconnectedPutBack: a preconnected conn the sweeper took off the idle stack to read
// what it received (TLS, sweep.go) and then put back is still taken first, though a checkout
// meanwhile found no preconnected conn on the stack.
func TestPreconnectedPutBack(t *testing.T) {
	p, used, pre := usedAndPreconnected(t)
	ctx := context.Background()
	ok := Outcome{Reusable: true, KeepAliveMax: -1}
	p.Release(used, ok)
	p.mu.Lock()
	p.removeIdleLocked(pre) // as sweepApply does for a TLS conn with bytes waiting
	pre.state = stateChecking
	p.mu.Unlock()
	c, err := p.Get(ctx, true)
	if err != nil || c != used {
		t.Fatalf("checkout with the preconnected conn off the stack: conn %d, err %v; want %d", connID(c), err, used.ID)
	}
	p.recheck(pre) // alive: back on the stack
	p.Release(c, ok)
	c, err = p.Get(ctx, true)
	if err != nil || c != pre {
		t.Fatalf("checkout after the preconnected conn was put back: conn %d, err %v; want %d", connID(c), err, pre.ID)
	}
	p.Release(c, ok)
}

func connID(c *Conn) uint64 {
	if c == nil {
		return 0
	}
	return c.ID
}

// TestPreconnectedSkippedStaysFirst: a request that may not take the preconnected conn (a POST,
// the conn idle longer than POSTs may reuse) takes another, and the preconnected conn is
// still taken first by the next request that may: the look that skipped it saw it, so
// mayPre stays set.
func TestPreconnectedSkippedStaysFirst(t *testing.T) {
	p, used, pre := usedAndPreconnected(t)
	ctx := context.Background()
	ok := Outcome{Reusable: true, KeepAliveMax: -1}
	p.mu.Lock()
	pre.lastUsed = pre.lastUsed.Add(-2 * p.unsafeIdle) // opened long ago, still within the idle timeout
	p.mu.Unlock()
	p.Release(used, ok) // the idle stack: pre, used (top)
	post, err := p.Get(ctx, false)
	if err != nil || post != used {
		t.Fatalf("POST took conn %d, err %v; want %d (the preconnected conn %d is too old for it)", connID(post), err, used.ID, pre.ID)
	}
	p.Release(post, ok)
	c, err := p.Get(ctx, true)
	if err != nil || c != pre {
		t.Fatalf("GET after the POST took conn %d, err %v; want the preconnected conn %d", connID(c), err, pre.ID)
	}
	p.Release(c, ok)
}

// usedAndPreconnected returns a pool that does not sweep by itself, a conn in use and a
// preconnected one on the idle stack.
func usedAndPreconnected(t *testing.T) (p *Pool, used, pre *Conn) {
	t.Helper()
	be := testutil.Echo(t)
	p = newPool(t, be.Addr(), func(o *Options) { o.SweepInterval = time.Hour }) // the test sweeps
	used, err := p.Get(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	return p, used, preconnectOne(t, p)
}
