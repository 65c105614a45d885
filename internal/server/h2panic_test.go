package server

import (
	"context"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"sluice/internal/h1"
	"sluice/internal/testutil"
)

// holdHandler holds "/hold" streams until their context ends (as a proxied request waits
// for its upstream) and answers anything else 200 "ok"; it is also the H2Observer that
// records the error tokens counted.
type holdHandler struct {
	started, returned chan struct{}
	mu                sync.Mutex
	tokens            []string
}

func (*holdHandler) ServeH1(ex *Exchange) { ex.WriteError(ErrBodyTooLarge, "") }

func (h *holdHandler) ServeH2(s *Stream) {
	var hd h1.Header
	if string(s.Req.Path) == "/hold" {
		h.started <- struct{}{}
		<-s.Context().Done()
		h.returned <- struct{}{}
		return
	}
	s.WriteHead(200, nil, &hd, 2)
	s.Write([]byte("ok"))
}

func (*holdHandler) H2Conn(string, bool)     {}
func (*holdHandler) H2GoAway(string, string) {}
func (*holdHandler) H2Limit(string, string)  {}
func (h *holdHandler) H2Error(_, token string) {
	h.mu.Lock()
	h.tokens = append(h.tokens, token)
	h.mu.Unlock()
}

func (h *holdHandler) counted(token string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, t := range h.tokens {
		if t == token {
			return true
		}
	}
	return false
}

// TestH2OwnReadLoopPanic: a panic in a connection's read loop (injected through
// h2FrameHook, on a frame type no client sends) ends that connection the way any other end
// does: GOAWAY INTERNAL_ERROR to the client, every open stream's context canceled so that
// its handler returns, the writer goroutine gone, the panic logged and counted. Another
// connection, open all along, keeps serving. Without the recovery in readSafely the panic
// reaches conn.serve, which knows nothing of the writer and the streams: no GOAWAY is sent,
// and the writer goroutine stays until the idle timeout (for ever without one) when no
// stream was open (the open streams' handlers end through the connection's context, and
// their last writes wake the writer).
func TestH2OwnReadLoopPanic(t *testing.T) {
	const panicType = http2.FrameType(0xfa) // unknown frame types are ignored (RFC 9113 §4.1)
	const lockedPanicType = http2.FrameType(0xfb)
	const bodyPanicType = http2.FrameType(0xfc)
	hook := func(o *h2Own, fh http2.FrameHeader) {
		switch fh.Type {
		case panicType:
			panic("injected read loop panic")
		case lockedPanicType: // as if it came from a section of the read loop that holds o.mu
			o.lockR()
			panic("injected read loop panic")
		case bodyPanicType: // as if it came from handing a stream its body (onData, endTrailers)
			o.lockR()
			o.lockBody(o.streams[fh.StreamID])
			panic("injected read loop panic")
		}
	}
	h2FrameHook.Store(&hook)
	t.Cleanup(func() { h2FrameHook.Store(nil) })

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := Settings{Name: "t", ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
		IdleTimeout: time.Minute, Limits: h1.Limits{MaxHeaderBytes: 65536, MaxHeaders: 100},
		H2: &H2Settings{Cleartext: true, MaxConcurrentStreams: 10, StreamWindow: 1 << 20, ConnWindow: 1 << 20, MaxFrameBytes: 16384,
			MaxResetsPerSecond: 100, MaxControlPerSecond: 100, MaxEmptyPerSecond: 100, MaxContinuations: 16, DrainWait: 10 * time.Millisecond}}
	// idle_timeout is far longer than the test: a connection left behind is not ended by it.
	h := &holdHandler{started: make(chan struct{}, 2), returned: make(chan struct{}, 2)}
	var log lockedBuffer
	srv := New(ln, st, h, slog.New(slog.NewTextHandler(&log, nil)))
	go srv.Serve()
	t.Cleanup(func() { // bounded: a connection stuck in its clean-up would hold Shutdown
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		done := make(chan struct{})
		go func() { srv.Shutdown(ctx); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})
	addr := ln.Addr().String()

	other := dialRaw(t, addr)
	get := func(id uint32) {
		t.Helper()
		other.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true, BlockFragment: other.block("GET", "/ok")})
		got, goAways := other.read(t, 5*time.Second, id)
		if s := got[id]; s == nil || s.status != "200" || string(s.body) != "ok" || len(goAways) > 0 {
			t.Fatalf("the other connection, stream %d: %+v, GOAWAY %v", id, s, goAways)
		}
	}
	get(1)

	// A connection with two streams open (their handlers waiting), then one with none (only
	// its writer goroutine to end), then one whose read loop panics holding o.mu, then one
	// whose read loop panics holding o.mu and stream 1's body lock (serve's end takes it to
	// end the stream).
	for i, tc := range []struct {
		holds  uint32
		typ    http2.FrameType
		stream uint32
	}{{2, panicType, 0}, {0, panicType, 0}, {1, lockedPanicType, 0}, {1, bodyPanicType, 1}} {
		holds := tc.holds
		r := dialRaw(t, addr)
		for id := uint32(1); id < 2*holds; id += 2 {
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, EndHeaders: true, EndStream: true, BlockFragment: r.block("GET", "/hold")})
		}
		for range holds {
			select {
			case <-h.started:
			case <-time.After(5 * time.Second):
				t.Fatal("the held streams did not start")
			}
		}
		r.fr.WriteRawFrame(tc.typ, 0, tc.stream, nil)

		for range holds {
			select {
			case <-h.returned:
			case <-time.After(5 * time.Second):
				t.Fatalf("%d streams: a handler did not return after the read loop's panic: its context was not canceled", holds)
			}
		}
		_, goAways := r.read(t, 5*time.Second, 99) // to the connection's end
		if last := max(2*holds, 1) - 1; len(goAways) != 1 || goAways[0].ErrCode != http2.ErrCodeInternal || goAways[0].LastStreamID != last {
			t.Errorf("%d streams: GOAWAY frames %v, want one INTERNAL_ERROR naming stream %d", holds, goAways, last)
		}
		r.c.Close()

		// The panicked connection left nothing: one connection (the other) with its one
		// writer, no handler.
		deadline := time.Now().Add(5 * time.Second)
		for {
			g := allStacks()
			writers, handlers := strings.Count(g, "server.(*h2Own).writeLoop("), strings.Count(g, "server.serveOwnStream(")
			if srv.Active() == 1 && writers == 1 && handlers == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d streams: %d connections, %d writers, %d handlers left: want the other connection's only\n%s",
					holds, srv.Active(), writers, handlers, g)
			}
			time.Sleep(5 * time.Millisecond)
		}
		get(uint32(3 + 2*i)) // the other connection goes on
	}
	if l := log.String(); !strings.Contains(l, "panic in HTTP/2 connection read loop") || !strings.Contains(l, "injected read loop panic") {
		t.Fatalf("the panic was not logged:\n%s", l)
	}
	if !h.counted(h2PanicToken) {
		t.Fatalf("%s not counted (counted: %v)", h2PanicToken, h.tokens)
	}
	other.c.Close()
	if s := testutil.Leaked(5*time.Second, func(g string) bool {
		return strings.Contains(g, "server.(*h2Own)") || strings.Contains(g, "server.serveOwnStream") ||
			strings.Contains(g, "server.(*conn).serve")
	}); s != "" {
		t.Fatalf("goroutines left after both connections closed:\n%s", s)
	}
}
