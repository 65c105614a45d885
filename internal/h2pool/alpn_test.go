package h2pool

import (
	"context"
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestAutoFollowsTheAnswer: an auto pool dials through Options.Dial. While the target
// answers HTTP/1.1 the pool does not serve it: a request fails with ErrNegotiatedHTTP1,
// without another dial until ReprobeInterval passed. When the answer becomes h2, the
// connection Dial returns carries the request, and the pool serves the target again. Each
// answer that differs from the one before is counted.
func TestAutoFollowsTheAnswer(t *testing.T) {
	b := newBackend(t, testutil.RacyH2Options{HeaderTableSize: -1}) // h2c: the "TLS" part is Dial's
	var h2 atomic.Bool
	var dials atomic.Int64
	o := testOptions()
	o.Auto, o.ReprobeInterval = true, 200*time.Millisecond
	o.Dial = func(ctx context.Context) (net.Conn, string, error) {
		dials.Add(1)
		if !h2.Load() {
			return nil, ALPNHTTP1, nil // the HTTP/1.1 pool kept the connection
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", b.Addr())
		return c, ALPNH2, err
	}
	p := newPool(t, b.Addr(), o)
	if !p.Serves() || p.Negotiated() != "" {
		t.Fatalf("before any answer: Serves %v, Negotiated %q; want true, \"\"", p.Serves(), p.Negotiated())
	}
	for i := range 2 {
		if _, err := do(p, "http", "a", false); !errors.Is(err, ErrNegotiatedHTTP1) {
			t.Fatalf("request %d: %v; want ErrNegotiatedHTTP1", i, err)
		}
	}
	if p.Serves() || p.Negotiated() != ALPNHTTP1 || dials.Load() != 1 {
		t.Fatalf("after an HTTP/1.1 answer: Serves %v, Negotiated %q, %d dials; want false, http/1.1, 1 (no re-probe within the interval)",
			p.Serves(), p.Negotiated(), dials.Load())
	}
	h2.Store(true)
	time.Sleep(o.ReprobeInterval)
	if _, err := do(p, "http", "b", true); err != nil {
		t.Fatalf("after the re-probe interval, with h2 answered: %v", err)
	}
	s := p.Snapshot()
	if !p.Serves() || s.Negotiated != ALPNH2 || s.Protocol != "auto" || s.Counters.ProtocolChanges != 2 || dials.Load() != 2 {
		t.Errorf("Serves %v, snapshot %q/%q, counters %+v, %d dials; want the h2 answer learned on the second dial",
			p.Serves(), s.Protocol, s.Negotiated, s.Counters, dials.Load())
	}
}

// TestAutoAdopt: a connection handed over by the HTTP/1.1 pool carries the next request
// without a dial; a closed pool refuses one.
func TestAutoAdopt(t *testing.T) {
	b := newBackend(t, testutil.RacyH2Options{HeaderTableSize: -1})
	o := testOptions()
	o.Auto = true
	o.Dial = func(context.Context) (net.Conn, string, error) {
		return nil, "", errors.New("the test dials nothing: the adopted connection must do")
	}
	p := newPool(t, b.Addr(), o)
	adopt := func() bool {
		c, err := net.Dial("tcp", b.Addr())
		if err != nil {
			t.Fatal(err)
		}
		return p.Adopt(c)
	}
	if !adopt() {
		t.Fatal("Adopt refused a connection")
	}
	for i, post := range []bool{true, false} {
		if _, err := do(p, "http", "x"+string(rune('0'+i)), post); err != nil {
			t.Fatalf("request %d on the adopted connection: %v", i, err)
		}
	}
	if s := p.Snapshot(); s.Counters.Adopted != 1 || len(s.Conns) != 1 || s.Negotiated != ALPNH2 {
		t.Errorf("snapshot %+v; want one adopted connection and h2 learned", s)
	}
	p.Close(CloseShutdown)
	if adopt() {
		t.Error("a closed pool adopted a connection")
	}
}
