package connpool

import (
	"context"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"sluice/internal/reason"
	"sluice/internal/testutil"
)

// TestHandoffStartsCountsAtZero: a conn Release hands straight to a waiter comes with byte
// counts of 0, as one taken off the idle stack does: the counts are how a failure is judged
// (nothing written: safe to send again; a reused conn failing before any response byte: the
// backend's idle close, counted reset on reuse and fed to learning), so counts left from the
// previous exchange would make a stale conn's failure look like one mid-response. The waiter
// resets them after the pool's lock (useHandoff), not Release under it.
func TestHandoffStartsCountsAtZero(t *testing.T) {
	be := testutil.Echo(t)
	p := newPool(t, be.Addr(), func(o *Options) { o.MaxConns = 1 })
	ctx := context.Background()
	held, err := p.Get(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	held.AddWritten(100) // the exchange it served
	held.AddRead(200)
	got := make(chan *Conn, 1)
	go func() {
		c, err := p.Get(ctx, true)
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	testutil.WaitFor(t, 5*time.Second, "a waiter", func() bool { return p.Snapshot().Waiting == 1 })
	p.Release(held, Outcome{Reusable: true, KeepAliveMax: -1})
	c := <-got
	if c != held || !c.Queued {
		t.Fatalf("the waiter got conn %d (queued %v), want %d handed over", connID(c), c != nil && c.Queued, held.ID)
	}
	if w, r := c.BytesWritten(), c.BytesRead(); w != 0 || r != 0 {
		t.Fatalf("handed over with %d bytes written and %d read counted, want 0 and 0", w, r)
	}
	// The backend closed it before anything came back: a reset on reuse, not a request error.
	p.Release(c, Outcome{Err: io.ErrUnexpectedEOF, KeepAliveMax: -1})
	if n := p.Snapshot().Counters.ResetOnReuse; n != 1 {
		t.Errorf("reset on reuse counted %d times, want 1", n)
	}
}

// TestWaiterGivesUpAsGranted: Release hands a conn to the first waiter after unlocking; a
// waiter whose context ends meanwhile finds itself gone from the queue and takes the grant.
// Whichever way each race goes, no conn and no slot is lost: with MaxConns 1, a Get after
// every round still gets the one conn.
func TestWaiterGivesUpAsGranted(t *testing.T) {
	be := testutil.Echo(t)
	p := newPool(t, be.Addr(), func(o *Options) { o.MaxConns = 1 })
	ok := Outcome{Reusable: true, KeepAliveMax: -1}
	granted, gaveUp := 0, 0
	for round := range 200 {
		held, err := get(p, 5*time.Second)
		if err != nil {
			t.Fatalf("round %d: the pool's one slot is lost: %v", round, err)
		}
		wctx, cancel := context.WithCancel(context.Background())
		type res struct {
			c   *Conn
			err error
		}
		done := make(chan res, 1)
		go func() {
			c, err := p.Get(wctx, true)
			done <- res{c, err}
		}()
		testutil.WaitFor(t, 5*time.Second, "a waiter", func() bool { return p.Snapshot().Waiting == 1 })
		var wg sync.WaitGroup
		wg.Go(cancel)
		wg.Go(func() { p.Release(held, ok) })
		wg.Wait()
		r := <-done
		switch {
		case r.err == nil:
			granted++
			p.Release(r.c, ok)
		case errors.Is(r.err, context.Canceled):
			gaveUp++
		default:
			t.Fatalf("round %d: waiter: %v", round, r.err)
		}
	}
	t.Logf("the waiter took the conn %d times, gave up %d times", granted, gaveUp)
	if s := p.Snapshot(); s.Waiting != 0 || len(s.Conns) != 1 {
		t.Errorf("%d waiting, %d conns; want 0 and 1", s.Waiting, len(s.Conns))
	}
}

func get(p *Pool, d time.Duration) (*Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return p.Get(ctx, true)
}

// TestCloseRacesRelease: Release starts the sweeper (or hands the conn to a waiter) after
// unlocking, so Close can run in between. Close still waits for that sweeper (the
// WaitGroup was added under the lock; TestMain fails on a sweeper left running, the race
// detector on an Add after the Wait), and a waiter either gets the conn or the shutdown
// error, never nothing.
func TestCloseRacesRelease(t *testing.T) {
	be := testutil.Echo(t)
	ok := Outcome{Reusable: true, KeepAliveMax: -1}
	for round := range 100 {
		waiter := round%2 == 1
		p := newPool(t, be.Addr(), func(o *Options) { o.MaxConns = 1 })
		held, err := get(p, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		if waiter {
			go func() {
				c, err := get(p, 5*time.Second)
				if err == nil {
					p.Release(c, ok) // the pool is closed: it closes the conn
				}
				done <- err
			}()
			testutil.WaitFor(t, 5*time.Second, "a waiter", func() bool { return p.Snapshot().Waiting == 1 })
		}
		var wg sync.WaitGroup
		wg.Go(func() { p.Close(CloseShutdown) })
		wg.Go(func() { p.Release(held, ok) })
		wg.Wait()
		if waiter {
			if err := <-done; err != nil && code(err) != reason.GatewayShutdown {
				t.Fatalf("round %d: waiter: %v, want the conn or gateway_shutting_down", round, err)
			}
		}
		if s := p.Snapshot(); len(s.Conns) != 0 {
			t.Fatalf("round %d: the closed pool still holds %d conns", round, len(s.Conns))
		}
	}
}
