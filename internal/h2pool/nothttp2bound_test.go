package h2pool

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// failingWrites is a client socket whose writes fail once fail is set, while its reads go
// on: a write failure the peer's read side does not follow.
type failingWrites struct {
	net.Conn
	fail atomic.Bool
}

func (c *failingWrites) Write(b []byte) (int, error) {
	if c.fail.Load() {
		return 0, errors.New("write failed (test)")
	}
	return c.Conn.Write(b)
}

// TestUnsettledWriteFailureBounded: a write that fails before the peer's SETTINGS on a
// connection whose read side stays open and silent (no verdict comes: not an HTTP/1.x
// answer, no reset) leaves the close to the read loop (closeAfterRead) for readVerdictWait
// at most: the stream whose HEADERS write failed and a stream already waiting for its
// response both fail, and the connection is reported dead (onDead), so the pool does not
// go on counting it.
func TestUnsettledWriteFailureBounded(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peerDone := make(chan struct{})
	go func() { // reads what comes and sends nothing, until the client closes
		defer close(peerDone)
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
	nc := &failingWrites{Conn: raw}
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

func streams(cc *clientConn) int {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return len(cc.streams)
}
