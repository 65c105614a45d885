package h2pool

import (
	"net"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestBurstDialsInParallel: a burst of 40 requests on a warm pool at max_requests 10,
// against a backend whose handshake takes 250 ms, gets the four more connections it needs
// in about one handshake's time, not four handshakes one after the other (the requests
// waiting for one dial: 1037-1038 ms in 3 runs under -race; 286-299 ms in 5 runs dialing
// in parallel, load average 2.6-3). Every request is answered and processed once, no
// connection carries more than max_requests, and the pool stays within max_conns +
// max_draining.
func TestBurstDialsInParallel(t *testing.T) {
	const delay, maxReq, burst = 250 * time.Millisecond, 10, 40
	var handshakes testutil.Overlap
	b := newGoH2BackendOn(t, nil, func(l net.Listener) net.Listener {
		return testutil.SlowHandshakeListener{Listener: l, Delay: delay, Held: &handshakes}
	})
	o := testOptions()
	o.MaxRequests, o.MaxConns, o.MaxDraining = maxReq, 8, 8
	p := newPool(t, b.srv.Listener.Addr().String(), o)
	ids := load(t, p, b, "http", "warm", 1, 1, func() bool { return false })

	start := time.Now()
	ids = append(ids, load(t, p, b, "http", "", burst, 1, func() bool { return false })...)
	took := time.Since(start)

	if most := b.check(t, ids); most > maxReq {
		t.Errorf("a connection carried %d requests; max_requests is %d", most, maxReq)
	}
	s := p.Snapshot()
	if n := len(s.Conns); n > o.MaxConns+o.MaxDraining {
		t.Errorf("the pool holds %d connections; max_conns + max_draining is %d", n, o.MaxConns+o.MaxDraining)
	}
	// The warm connection, the four the burst needs, and one spare dialed ahead: the
	// connections nearing max_requests together share one spare.
	if n := b.conns.Load(); n > 6 {
		t.Errorf("the backend saw %d connections; want at most 6 (the warm one, 4 for the burst, 1 spare)", n)
	}
	t.Logf("burst of %d took %s: %d backend connections, %d dials (%d replacements), %d requests waited for a dial",
		burst, took.Round(time.Millisecond), b.conns.Load(), s.Counters.Dials, s.Counters.Replacements, s.Counters.DialWaits)
	// The burst needs 40 more streams: the warm connection's 9 and four new connections.
	// Serial dials take at least four handshakes, one at a time; parallel ones about one
	// (plus the requests' own 20 ms and the SETTINGS wait of the first). The handshakes
	// held at once say which, whatever the machine's load (the burst's wall time, asserted
	// before, reached 821 ms at a load average of 22).
	if most := handshakes.Most(); most < 2 {
		t.Errorf("the burst took %s with at most %d handshake at a time; the connections it needs should be dialed at once", took.Round(time.Millisecond), most)
	}
}
