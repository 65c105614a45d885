package h2pool

import (
	"context"
	"errors"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// waitChecking waits until p's only connection carries one stream reservation: the request
// PINGing it before its stream (the backend holds or drops that PING).
func waitChecking(t *testing.T, p *Pool) {
	t.Helper()
	testutil.WaitFor(t, 2*time.Second, "the PING check to start", func() bool {
		s := p.Snapshot()
		return len(s.Conns) == 1 && s.Conns[0].Active == 1
	})
}

// TestPingCheckHoldsOtherStreams: while a request PINGs a connection that was idle past
// PingAfterIdle, a second request does not put its stream on the unchecked connection. The
// backend went silent (a stale connection): the PING goes unanswered and the connection is
// retired; a POST that arrived meanwhile must not have been written to it and cut by that
// retirement (it failed with the library's "force closed", not retryable), but run on a new
// connection, once.
func TestPingCheckHoldsOtherStreams(t *testing.T) {
	var silent atomic.Bool
	b := newBackend(t, testutil.RacyH2Options{HeaderTableSize: -1, Silent: &silent})
	o := testOptions()
	o.PingAfterIdle, o.PingTimeout = 50*time.Millisecond, 300*time.Millisecond
	p := newPool(t, b.Addr(), o)
	if _, err := do(p, "http", "warm", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	silent.Store(true) // the first connection is stale now; new ones are served
	errs := make(chan error, 2)
	go func() { _, err := do(p, "http", "get", false); errs <- err }()
	waitChecking(t, p)
	go func() { _, err := do(p, "http", "post", true); errs <- err }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("request failed: %v", err)
		}
	}
	if n := b.Processed("post"); n != 1 {
		t.Errorf("POST processed %d times; want 1", n)
	}
	s := p.Snapshot()
	if len(s.History) != 1 || s.History[0].Reason != ClosePingTimeout || s.History[0].Streams != 1 {
		t.Errorf("history %+v; want the stale connection closed for ping_timeout after its 1 stream", s.History)
	}
}

// TestPingCheckCanceledKeepsConnection: a request whose client goes away while its PING
// check is out ends at once but does not retire the connection: the PING's answer (late,
// the backend is busy) decides, not the client. A POST that came meanwhile runs on the same
// connection and succeeds; no connection is closed and none dialed.
func TestPingCheckCanceledKeepsConnection(t *testing.T) {
	b := newBackend(t, testutil.RacyH2Options{HeaderTableSize: -1, PingDelay: 500 * time.Millisecond})
	o := testOptions()
	o.PingAfterIdle, o.PingTimeout = 50*time.Millisecond, time.Second
	p := newPool(t, b.Addr(), o)
	if _, err := do(p, "http", "warm", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	gone := getAsync(ctx, p, "gone")
	waitChecking(t, p)
	posted := make(chan error, 1)
	go func() { _, err := do(p, "http", "post", true); posted <- err }()
	time.Sleep(20 * time.Millisecond)
	cancel() // the first client leaves while the PING is out
	canceled := time.Now()
	if err := <-gone; !errors.Is(err, context.Canceled) {
		t.Errorf("canceled request: %v; want context.Canceled", err)
	}
	if d := time.Since(canceled); d > 400*time.Millisecond {
		t.Errorf("the canceled request ended %s after its cancel; want at once, not after the PING's answer (500ms)", d)
	}
	if err := <-posted; err != nil {
		t.Fatalf("POST failed: %v", err)
	}
	if n := b.Processed("post"); n != 1 {
		t.Errorf("POST processed %d times; want 1", n)
	}
	s := p.Snapshot()
	if len(s.History) != 0 || s.Counters.PingFailures != 0 || b.Accepted.Load() != 1 {
		t.Errorf("history %+v, %d PING failures, %d connections; want the connection kept (the PING was answered)", s.History, s.Counters.PingFailures, b.Accepted.Load())
	}
	if _, err := do(p, "http", "after", false); err != nil || b.Accepted.Load() != 1 {
		t.Errorf("after: %v, %d connections; want the same connection", err, b.Accepted.Load())
	}
}

// TestPingCheckOverlap: with ping_after_idle 0 (a PING before every stream that finds the
// connection idle), a request whose client left during a PING check hands the connection
// back at once, idle again while that PING is still out; the next request must wait for that
// PING, not start a second check over it (the two checks shared one field: the first one's
// end closed the second's channel and the second's then closed nil, a panic in a pool
// goroutine that ended the process).
func TestPingCheckOverlap(t *testing.T) {
	b := newBackend(t, testutil.RacyH2Options{HeaderTableSize: -1, PingDelay: 200 * time.Millisecond})
	o := testOptions()
	o.PingAfterIdle, o.PingTimeout = 0, time.Second
	p := newPool(t, b.Addr(), o)
	if _, err := do(p, "http", "warm", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	gone := getAsync(ctx, p, "")
	waitChecking(t, p)
	cancel()
	<-gone
	testutil.WaitFor(t, time.Second, "the connection idle again", func() bool { return p.Snapshot().Conns[0].Active == 0 })
	if _, err := do(p, "http", "next", true); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond) // both PINGs answered
	if s := p.Snapshot(); len(s.History) != 0 || b.Accepted.Load() != 1 {
		t.Errorf("history %+v, %d connections; want the one connection kept", s.History, b.Accepted.Load())
	}
}

// getAsync sends a GET bound to ctx (tagged x-test-id: id unless id is "") on its own
// goroutine and delivers its error.
func getAsync(ctx context.Context, p *Pool, id string) <-chan error {
	gone := make(chan error, 1)
	go func() {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.Addr()+"/r", nil)
		if id != "" {
			req.Header.Set("x-test-id", id)
		}
		var a Attempt
		resp, err := p.RoundTrip(req, &a)
		if err == nil {
			resp.Body.Close()
			p.Done(&a)
		}
		gone <- err
	}()
	return gone
}
