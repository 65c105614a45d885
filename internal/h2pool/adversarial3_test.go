package h2pool

// A third adversarial read of the own client connection (issue #16): raw-framer backends
// (clientpeer_test.go) that check what the client's frames mean on the wire.

import (
	"net/http"
	"runtime"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

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
		for {
			f, err := p.fr.ReadFrame()
			if err != nil {
				return
			}
			switch f := f.(type) {
			case *http2.SettingsFrame:
				if !f.IsAck() {
					p.fr.WriteSettingsAck()
				}
			case *http2.RSTStreamFrame:
				if f.StreamID == open {
					open = 0
				}
			case *http2.MetaHeadersFrame:
				if open != 0 {
					over <- f.StreamID
					p.fr.WriteRSTStream(f.StreamID, http2.ErrCodeProtocol)
					continue
				}
				open = f.StreamID
				// A head and part of a body: the stream stays open until the client resets it.
				p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: open, BlockFragment: p.block(":status", "200"), EndHeaders: true})
				p.fr.WriteData(open, false, []byte("x"))
			}
		}
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
