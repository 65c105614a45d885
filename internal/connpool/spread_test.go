package connpool

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestProvisionalHoldsOverMixedTimers: one target address, two backends behind it with
// different idle timers (a Service over two pods, one with a short keep-alive timeout). A
// reset on reuse from the short one, then a conn of the long one answering at an idle age the
// reset's timer would not allow: the pool cannot tell the two apart, and the short timer is
// still there. A POST must not then reuse a conn idle as long as the reset's (it cannot be
// re-sent): before, one reset bounded POSTs until it was learned or outgrown.
func TestProvisionalHoldsOverMixedTimers(t *testing.T) {
	const idle, window = 400 * time.Millisecond, 250 * time.Millisecond // drops requests at idle 150-400 ms
	short := testutil.RacingCloser(t, idle, window)
	long := testutil.Echo(t)
	lb := testutil.NewSpread(t, short.Addr(), long.Addr()) // conns go short, long, short, ...
	p := newPool(t, lb.Addr(), nil)

	mustOK(t, exchange(p, http.MethodGet, "a")) // conn 1: short
	time.Sleep(200 * time.Millisecond)          // into the short timer's race window
	first, final := getExchange(p, "b")         // reset; the retry dials conn 2: long
	mustOK(t, final)
	if first.err == nil || !first.reused {
		t.Fatalf("GET on the short conn at idle %v: err %v, reused %v; want a reset on reuse", first.idle, first.err, first.reused)
	}
	s := p.Snapshot()
	t.Logf("after the reset at idle %v: provisional %v, unsafe %v", first.idle, s.Provisional, s.UnsafeMaxIdle)

	time.Sleep(350 * time.Millisecond) // conn 2 (long) idles past max(age/0.75, age+margin)
	if a := exchange(p, http.MethodGet, "c"); a.err != nil || a.idle < 300*time.Millisecond {
		t.Fatalf("GET on the long conn: idle %v, err %v", a.idle, a.err)
	}
	mustOK(t, exchangeOn(p, http.MethodGet, "d", true)) // conn 3: short, now idle in the pool
	time.Sleep(200 * time.Millisecond)                  // conn 3 is in the short timer's race window

	s = p.Snapshot()
	t.Logf("learned %v (%s), provisional %v, effective %v, unsafe %v", s.Learned, s.LearnedSource, s.Provisional, s.EffectiveIdle, s.UnsafeMaxIdle)
	if limit := time.Duration(p.opts.SafetyFraction*float64(first.idle)) / unsafeShare; s.UnsafeMaxIdle > limit {
		t.Errorf("POSTs reuse conns idle up to %v, want at most %v: the short timer's reset at %v no longer bounds them",
			s.UnsafeMaxIdle, limit, first.idle)
	}
	for _, id := range []string{"p1", "p2"} {
		a := exchange(p, http.MethodPost, id)
		if a.err != nil {
			t.Errorf("POST %s failed on a conn idle %v (reused %v): %v", id, a.idle, a.reused, a.err)
		}
		t.Logf("POST %s: reused %v at idle %v", id, a.reused, a.idle)
		if id == "p1" && !a.reused {
			t.Errorf("POST %s dialed: the long conn, seen alive longer than it is idle, may be reused", id)
		}
	}
	if d := short.Duplicates(); len(d) > 0 {
		t.Errorf("duplicates: %v", d)
	}
}

// TestRefutedProvisionalFreesProvenConns: a client that sends only POSTs, back to back, meets
// one reset on reuse at a short idle age (a crash, as in TestStaleTorture case f). Its POSTs
// then dial (the provisional value bounds them), leaving their conns idle; the sweep probes
// those alive past the reset's age and refutes it. A conn seen alive that long is not one the
// reset's timer closes, so a POST must reuse it: before, a refuted value still held every conn
// to its own sighting, which an idle conn's probe never passes, and such a client dialed for
// every request until the value grew back (an hour).
func TestRefutedProvisionalFreesProvenConns(t *testing.T) {
	// Each conn's third request is dropped unread: conn 1's, at idle 30 ms, is the reset.
	be := testutil.NewBackend(t, testutil.BackendOptions{DropNth: 3})
	p := newPool(t, be.Addr(), func(o *Options) { o.SweepInterval = 100 * time.Millisecond })
	mustOK(t, exchange(p, http.MethodPost, "p1"))
	time.Sleep(30 * time.Millisecond)
	mustOK(t, exchange(p, http.MethodPost, "p2"))
	time.Sleep(30 * time.Millisecond)
	if a := exchange(p, http.MethodPost, "p3"); a.err == nil || !a.reused {
		t.Fatalf("third request on conn 1: err %v, reused %v; want a reset on reuse", a.err, a.reused)
	}
	prov := p.Snapshot().Provisional
	if prov == 0 {
		t.Fatalf("no provisional value after a reset on reuse")
	}
	// The POSTs the bound makes dial (fresh here whatever the machine's pace), each leaving
	// an idle conn for the sweep to probe.
	for i := range 3 {
		mustOK(t, exchangeOn(p, http.MethodPost, fmt.Sprintf("q%d", i), true))
	}
	testutil.WaitFor(t, 5*time.Second, "the provisional value refuted by a probe", func() bool {
		return p.Snapshot().ProvisionalRefuted
	})
	s := p.Snapshot()
	a := exchange(p, http.MethodPost, "r")
	mustOK(t, a)
	if !a.reused {
		t.Errorf("POST dialed after the provisional %v was refuted (unsafe max idle %v, opened %d): conns the sweep saw alive past %v may be reused",
			prov, s.UnsafeMaxIdle, s.Counters.Opened, p.refuteAge(prov))
	}
	if d := be.Duplicates(); len(d) > 0 {
		t.Errorf("duplicates: %v", d)
	}
}
