package h2pool

// A third adversarial read of the own client connection (issue #16): raw-framer backends
// (clientpeer_test.go) that check what the client's frames mean on the wire.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"sluice/internal/testutil"
)

// each reads frames until the connection ends, acknowledging SETTINGS and handing the
// other frames to handle (which must not keep them: the Framer reuses them).
func (p *rawPeer) each(handle func(f http2.Frame)) {
	for {
		f, err := p.fr.ReadFrame()
		if err != nil {
			return
		}
		if sf, ok := f.(*http2.SettingsFrame); ok {
			if !sf.IsAck() {
				p.fr.WriteSettingsAck()
			}
			continue
		}
		handle(f)
	}
}

// TestClientResetBeforeNextHeaders: a stream the client resets (its response body closed
// before the end) counts against the backend's SETTINGS_MAX_CONCURRENT_STREAMS until the
// backend reads its RST_STREAM; the stream that takes its slot must not get its HEADERS out
// first. The backend (limit 1) refuses a stream above its limit as x/net's server does,
// with a stream error PROTOCOL_ERROR, which fails the request (a POST would not be
// re-sent). Each round closes the open stream's body while the next request spins for the
// slot; the race is between the closing goroutine's RST and the next stream's HEADERS.
func TestClientResetBeforeNextHeaders(t *testing.T) {
	const rounds = 3000
	over := make(chan uint32, rounds+1)
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
		var open uint32
		p.each(func(f http2.Frame) {
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				if f.StreamID == open {
					open = 0
				}
			case *http2.MetaHeadersFrame:
				if open != 0 {
					over <- f.StreamID
					p.fr.WriteRSTStream(f.StreamID, http2.ErrCodeProtocol)
					return
				}
				open = f.StreamID
				// A head and part of a body: the stream stays open until the client resets it.
				p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: open, BlockFragment: p.block(":status", "200"), EndHeaders: true})
				p.fr.WriteData(open, false, []byte("x"))
			}
		})
	})
	awaitSettled(t, cc)
	deadline := time.Now().Add(hangBound)
	for cc.State().MaxConcurrentStreams != 1 {
		if time.Now().After(deadline) {
			t.Fatal("the backend's limit was not applied")
		}
		time.Sleep(time.Millisecond)
	}
	type result struct {
		resp *http.Response
		err  error
	}
	next := func() <-chan result {
		ch := make(chan result, 1)
		go func() {
			for !cc.ReserveNewRequest() { // bounded by the test's timeout below
				if time.Now().After(deadline) {
					ch <- result{err: errClientConnClosed}
					return
				}
				runtime.Gosched()
			}
			req, _ := http.NewRequest("GET", "http://backend/x", nil)
			resp, err := cc.roundTrip(req)
			ch <- result{resp, err}
		}()
		return ch
	}
	r := <-next()
	failed := 0
	for i := 0; i < rounds && r.err == nil; i++ {
		ch := next()
		r.resp.Body.Close() // RST_STREAM(CANCEL): the slot is free once the backend reads it
		select {
		case r = <-ch:
		case <-time.After(hangBound):
			t.Fatal("a stream hung")
		}
		for r.err != nil && failed < rounds { // refused above the limit: try again for the next round
			failed++
			r = <-next()
		}
	}
	if r.err != nil {
		t.Fatalf("round trip: %v", r.err)
	}
	r.resp.Body.Close()
	if n := len(over); n > 0 {
		t.Errorf("in %d rounds, %d streams' HEADERS reached the backend before the RST_STREAM of the stream whose slot they took (first: stream %d)", rounds, n, <-over)
	}
}

// TestClientEarlyAnswerWhileBodyWaits: the backend answers whole while the request body
// waits for send window it never gives (nor a RST_STREAM(NO_ERROR)). The response reads to
// its end; closing it resets the stream with CANCEL (the backend still counts it: the
// request side is open), ends the body's writer and frees the stream's slot under the
// backend's limit of one, so that the next stream goes on the connection.
func TestClientEarlyAnswerWhileBodyWaits(t *testing.T) {
	rst := make(chan http2.ErrCode, 1)
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 1})
		id := p.awaitHeaders()
		for total := 0; total < 65535; { // the initial window: the writer then waits
			f, err := p.fr.ReadFrame()
			if err != nil {
				return
			}
			if d, ok := f.(*http2.DataFrame); ok {
				total += len(d.Data())
			}
		}
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(":status", "413"), EndHeaders: true})
		p.fr.WriteData(id, true, []byte("too large"))
		p.each(func(f http2.Frame) {
			switch f := f.(type) {
			case *http2.RSTStreamFrame:
				if f.StreamID == id {
					rst <- f.ErrCode
				}
			case *http2.MetaHeadersFrame:
				p.answer(f.StreamID)
			}
		})
	})
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://backend/upload", bytes.NewReader(make([]byte, 1<<20)))
	cc.ReserveNewRequest()
	resp, err := cc.roundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	if err != nil || string(body) != "too large" || resp.StatusCode != 413 {
		t.Errorf("response %d %q, %v; want 413 \"too large\"", resp.StatusCode, body, err)
	}
	closed := make(chan struct{})
	go func() { resp.Body.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(hangBound):
		t.Fatal("closing the response hung on the body's writer")
	}
	select {
	case code := <-rst:
		if code != http2.ErrCodeCancel {
			t.Errorf("the stream was reset with %v, want CANCEL", code)
		}
	case <-time.After(hangBound):
		t.Fatal("the backend got no RST_STREAM for a stream whose request side was open")
	}
	if left := testutil.Leaked(hangBound, func(g string) bool { return strings.Contains(g, "writeBody") }); left != "" {
		t.Errorf("body writer left running:\n%s", left)
	}
	resp, err = get(cc)
	if err != nil {
		t.Fatalf("the next stream: %v (the closed stream's slot was kept)", err)
	}
	resp.Body.Close()
}

// TestClientPingAckPayload: only an acknowledgment carrying the PING's own payload answers
// it (RFC 9113 §6.7); one with another payload leaves the PING waiting (and the pool then
// retires the connection at ping_timeout), so a backend that acks blindly is not proof of
// life.
func TestClientPingAckPayload(t *testing.T) {
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		wrong := true
		p.each(func(f http2.Frame) {
			if pf, ok := f.(*http2.PingFrame); ok {
				data := pf.Data
				if wrong {
					data[7] ^= 0xff
				}
				wrong = !wrong
				p.fr.WritePing(true, data)
			}
		})
	})
	awaitSettled(t, cc)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := cc.Ping(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a PING acknowledged with another payload: %v, want it unanswered", err)
	}
	ctx, cancel = context.WithTimeout(context.Background(), hangBound)
	defer cancel()
	if err := cc.Ping(ctx); err != nil {
		t.Errorf("a PING acknowledged with its payload: %v", err)
	}
}

// TestReadIdlePingHoldsNewStreams: while a read-idle PING is out on a connection, a new
// stream does not go on it, as none does during the PING check before a stream
// (TestPingCheckHoldsOtherStreams): the connection read nothing for read_idle_timeout and
// may be stale. The backend went silent; a POST that arrived while the PING was out must
// not have been written to the connection and cut by its retirement at ping_timeout (as
// processed: a POST is not re-sent), but run on a new connection, once. ping_after_idle is
// far above read_idle_timeout so that no check before the stream stands in for the wait
// (with the defaults, 5s and 15s, the case is a connection carrying a long quiet stream,
// which the check, for idle connections only, does not cover).
func TestReadIdlePingHoldsNewStreams(t *testing.T) {
	var silent atomic.Bool
	b := newBackend(t, testutil.RacyH2Options{HeaderTableSize: -1, Silent: &silent})
	o := testOptions()
	o.PingAfterIdle, o.ReadIdleTimeout, o.PingTimeout = time.Hour, 100*time.Millisecond, 500*time.Millisecond
	p := newPool(t, b.Addr(), o)
	if _, err := do(p, "http", "warm", false); err != nil {
		t.Fatal(err)
	}
	silent.Store(true) // the first connection is stale now; new ones are served
	testutil.WaitFor(t, 5*time.Second, "the read-idle PING to go out", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return len(p.conns) == 1 && p.conns[0].pinging.Load()
	})
	if _, err := do(p, "http", "post", true); err != nil {
		t.Errorf("POST during the read-idle PING: %v", err)
	}
	if n := b.Processed("post"); n != 1 {
		t.Errorf("POST processed %d times; want 1", n)
	}
}

// gateConn, once armed, lets a write through but for its last hold bytes, then waits for
// fail and returns its error: the connection died in the middle of the write.
type gateConn struct {
	net.Conn
	armed atomic.Bool
	hold  int
	fail  chan error
}

func (c *gateConn) Write(b []byte) (int, error) {
	if !c.armed.CompareAndSwap(true, false) {
		return c.Conn.Write(b)
	}
	n, err := c.Conn.Write(b[:max(len(b)-c.hold, 0)])
	if err != nil {
		return n, err
	}
	select {
	case err = <-c.fail:
	case <-time.After(hangBound):
		err = errors.New("gated write: never failed")
	}
	return n, err
}

// TestClientGoAwayDuringHeadersWrite: a GOAWAY whose last-stream-id is below a stream that
// arrives while the stream's write (its HEADERS whole, its inline DATA not yet) is still in
// progress, and then the write fails: the backend said it will not process the stream, so
// it is unprocessed (re-sent whatever its method), not failed by the write's error (a POST
// would be answered 502 and never re-sent).
func TestClientGoAwayDuringHeadersWrite(t *testing.T) {
	const dataFrame = 9 + len("payload") // the inline DATA at the end of the write
	c := &gateConn{hold: dataFrame, fail: make(chan error, 1)}
	cc := newRawPeerWrapped(t, func(nc net.Conn) net.Conn { c.Conn = nc; return c }, func(p *rawPeer) {
		p.fr.WriteSettings()
		if p.awaitHeaders() == 0 {
			return
		}
		p.fr.WriteGoAway(0, http2.ErrCodeNo, nil)
		p.drain()
	})
	awaitSettled(t, cc)
	c.armed.Store(true)
	req, _ := http.NewRequest("POST", "http://backend/x", heldBody{strings.NewReader("payload")})
	req.ContentLength = 7
	cc.ReserveNewRequest()
	done := make(chan error, 1)
	go func() {
		resp, err := cc.roundTrip(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	testutil.WaitFor(t, hangBound, "the GOAWAY to be read", func() bool { return cc.State().Closing })
	c.fail <- io.ErrClosedPipe
	select {
	case err := <-done:
		if !errors.Is(err, ErrUnprocessed) {
			t.Errorf("stream above the GOAWAY's last-stream-id failed with %v; want ErrUnprocessed", err)
		}
	case <-time.After(hangBound):
		t.Fatal("the stream hung")
	}
}
