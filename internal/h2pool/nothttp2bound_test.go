package h2pool

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// failingWrites is a client socket whose writes fail once fail is set, while its reads go
// on: a write failure the peer's read side does not follow. failed, when set, runs at each
// failure.
type failingWrites struct {
	net.Conn
	fail   atomic.Bool
	failed func()
}

func (c *failingWrites) Write(b []byte) (int, error) {
	if c.fail.Load() {
		if c.failed != nil {
			c.failed()
		}
		return 0, errors.New("write failed (test)")
	}
	return c.Conn.Write(b)
}

// silentPeer returns a client socket to a peer that reads what comes and sends nothing, until
// the client closes: no SETTINGS, no HTTP/1.x answer, no reset.
func silentPeer(t *testing.T) net.Conn {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		io.Copy(io.Discard, nc)
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// TestUnsettledWriteFailureBounded: a write that fails before the peer's SETTINGS on a
// connection whose read side stays open and silent (no verdict comes: not an HTTP/1.x
// answer, no reset) leaves the close to the read loop (closeAfterRead) for readVerdictWait
// at most: the stream whose HEADERS write failed and a stream already waiting for its
// response both fail, and the connection is reported dead (onDead), so the pool does not
// go on counting it.
func TestUnsettledWriteFailureBounded(t *testing.T) {
	nc := &failingWrites{Conn: silentPeer(t)}
	dead := make(chan struct{})
	cc, err := newClientConn(nc, func() { close(dead) })
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()

	cc.ReserveNewRequest()
	waiting := make(chan error, 1)
	go func() { // written whole: it waits for a response that never comes
		req, _ := http.NewRequest("GET", "http://backend/first", nil)
		resp, err := cc.roundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		waiting <- err
	}()
	deadline := time.Now().Add(hangBound)
	for streams(cc) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	nc.fail.Store(true)
	req, _ := http.NewRequest("GET", "http://backend/second", nil)
	if err := roundTripBounded(t, cc, req, "the stream whose write failed hung"); err == nil || errors.Is(err, ErrNotHTTP2) {
		t.Errorf("the stream whose write failed: %v, want its write's failure", err)
	}
	select {
	case err := <-waiting:
		if err == nil {
			t.Error("the waiting stream got a response")
		}
	case <-time.After(hangBound):
		t.Fatal("the stream waiting for its response hung")
	}
	select {
	case <-dead:
	case <-time.After(hangBound):
		t.Fatal("the connection was not reported dead")
	}
	if st := cc.State(); !st.Closed {
		t.Errorf("state %+v, want closed", st)
	}
}

// TestUnsettledWriteFailureCanceled: the wait for the read loop's verdict after a HEADERS
// write failed before the peer's SETTINGS (notHTTP2Err) ends with the request's context: a
// request whose client left (or whose attempt timed out) as its write failed returns at
// once, with the write's failure, not after readVerdictWait (1 s) as before.
func TestUnsettledWriteFailureCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	nc := &failingWrites{Conn: silentPeer(t), failed: cancel}
	cc, err := newClientConn(nc, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	nc.fail.Store(true)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://backend/", nil)
	start := time.Now()
	err = roundTripBounded(t, cc, req, "the canceled stream whose write failed hung")
	if took := time.Since(start); took >= readVerdictWait/2 {
		t.Errorf("the canceled stream took %v; want it back at once, not after the verdict wait (%v)", took, readVerdictWait)
	}
	if err == nil || errors.Is(err, ErrNotHTTP2) {
		t.Errorf("the canceled stream: %v, want its write's failure", err)
	}
}

func streams(cc *clientConn) int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.streams)
}
