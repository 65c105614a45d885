package h2pool

import (
	"context"
	"errors"
	"net"
	"net/http"
	"testing"
	"time"

	"sluice/internal/reason"
	"sluice/internal/testutil"
)

// TestSettingsWaitGivesUpWithReason: a request that gives up while it waits for the
// SETTINGS of a connection another request dialed ends as one that gives up waiting for
// the dial itself does: a 504 connect_timeout, which tells the proxy that nothing was sent
// (a bare context error reads as a timeout waiting for the response: the wrong reason, and
// a request never sent taken for one the backend may have run). The pool's count of requests
// waiting for a dial (burst.go) is back at zero after it, and the request that dialed is
// answered.
func TestSettingsWaitGivesUpWithReason(t *testing.T) {
	const delay = 300 * time.Millisecond
	b := newGoH2BackendOn(t, nil, func(l net.Listener) net.Listener { return testutil.SlowHandshakeListener{Listener: l, Delay: delay} })
	p := newPool(t, b.srv.Listener.Addr().String(), testOptions())
	first := make(chan error, 1)
	go func() {
		_, _, err := send(p, "http", "first", false)
		first <- err
	}()
	testutil.WaitFor(t, time.Second, "the first request's connection", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.conns) == 1 && p.conns[0].active.Load() == 1
	})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.Addr()+"/r", nil)
	req.Header.Set("x-test-id", "second")
	var a Attempt
	resp, err := p.RoundTrip(req, &a)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("the request was answered within 50 ms; the backend's SETTINGS take %s", delay)
	}
	var re *reason.Error
	if !errors.As(err, &re) || re.Status != 504 || re.Code != reason.ConnectTimeout {
		t.Errorf("gave up waiting for SETTINGS with %v (%T); want a 504 %s", err, err, reason.ConnectTimeout)
	}
	if a.ConnID != 0 {
		t.Errorf("the attempt names connection %d; it had none", a.ConnID)
	}
	if err := <-first; err != nil {
		t.Errorf("the request that dialed: %v", err)
	}
	p.mu.Lock()
	demand := p.demand
	p.mu.Unlock()
	if demand != 0 {
		t.Errorf("%d requests counted as waiting for a dial after every request ended", demand)
	}
}
