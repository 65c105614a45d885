package testutil

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is what a [FaultBackend] does with one request once it has read its head.
type Fault struct {
	// Reset resets the connection (RST) after reading ReadBody bytes of the body, without
	// answering: a backend that crashed or gave up mid-request.
	Reset bool
	// ReadBody is the number of body bytes read before a Reset (0: none, the head only).
	ReadBody int64
	// Wait, when non-nil, holds the answer until it is closed (or the backend is).
	Wait <-chan struct{}
	// Delay is added before the answer.
	Delay time.Duration
	// Park leaves the connection unread after the answer: it stays open and looks idle to
	// the client, but a request sent on it is never read, until [FaultBackend.ResetIdle]
	// resets it. It models a backend whose idle timer fires just as a request arrives.
	Park bool
}

// FaultBackend is a loopback HTTP/1.1 keep-alive backend that asks a function, for each
// request once its head is read, what to do with it: answer, reset the connection after
// reading part of the body, hold the answer. It counts the requests it started (head read)
// and answered per X-Request-Id, so a test can tell exactly how often the gateway sent each
// request, and it can reset the connections that sit idle between requests (a pooled
// connection closed under the client).
//
// An answer is 200 with the header "X-Got: <body bytes>:<first 16 hex digits of their
// SHA-256>", so a test can check that a re-sent body arrived whole.
type FaultBackend struct {
	decide func(req *http.Request, n int) Fault
	addr   string
	ln     net.Listener
	wg     sync.WaitGroup

	mu       sync.Mutex
	conns    map[*faultConn]struct{}
	started  map[string]int
	answered map[string]int
	closed   bool

	accepted atomic.Int64
}

// NewFaultBackend starts a FaultBackend on 127.0.0.1:0; it is closed by t.Cleanup. decide
// gets each request (its body unread) and n, how many times a request with its X-Request-Id
// has been started, this one included; nil answers every request.
func NewFaultBackend(t testing.TB, decide func(req *http.Request, n int) Fault) *FaultBackend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testutil: listen: %v", err)
	}
	if decide == nil {
		decide = func(*http.Request, int) Fault { return Fault{} }
	}
	b := &FaultBackend{decide: decide, addr: ln.Addr().String(), ln: ln,
		conns: map[*faultConn]struct{}{}, started: map[string]int{}, answered: map[string]int{}}
	b.wg.Add(1)
	go b.serve()
	t.Cleanup(b.Close)
	return b
}

// Addr returns the backend's "host:port".
func (b *FaultBackend) Addr() string { return b.addr }

// Accepted returns the number of connections accepted.
func (b *FaultBackend) Accepted() int64 { return b.accepted.Load() }

// Started returns how many times a request with X-Request-Id id was started: its head was
// read, whatever happened next.
func (b *FaultBackend) Started(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.started[id]
}

// Answered returns how many times a request with X-Request-Id id was answered.
func (b *FaultBackend) Answered(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.answered[id]
}

// Idle returns the number of connections between requests (parked ones included).
func (b *FaultBackend) Idle() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for fc := range b.conns {
		if fc.idle {
			n++
		}
	}
	return n
}

// ResetIdle resets (RST) every connection that sits between requests, parked ones included,
// and returns how many it reset. Call it while no request is on its way to a connection
// that is not parked: one that has just arrived may be read or dropped.
func (b *FaultBackend) ResetIdle() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for fc := range b.conns {
		if fc.idle {
			b.dropLocked(fc)
			n++
		}
	}
	return n
}

// faultConn is one connection of a FaultBackend; idle is guarded by the backend's mutex.
type faultConn struct {
	net.Conn
	idle bool          // between requests
	gone chan struct{} // closed when the connection is closed or reset
}

// dropLocked resets fc and forgets it.
func (b *FaultBackend) dropLocked(fc *faultConn) {
	abort(fc.Conn)
	delete(b.conns, fc)
	close(fc.gone)
}

// Close stops the backend, resets its connections and waits for its goroutines.
func (b *FaultBackend) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	_ = b.ln.Close()
	for fc := range b.conns {
		b.dropLocked(fc)
	}
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *FaultBackend) serve() {
	defer b.wg.Done()
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		if b.closed {
			b.mu.Unlock()
			reset(c)
			return
		}
		fc := &faultConn{Conn: c, idle: true, gone: make(chan struct{})}
		b.conns[fc] = struct{}{}
		b.accepted.Add(1)
		b.wg.Add(1)
		b.mu.Unlock()
		go b.handle(fc)
	}
}

// setIdle records whether fc is between requests; false when it was reset meanwhile.
func (b *FaultBackend) setIdle(fc *faultConn, idle bool) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.conns[fc]; !ok {
		return false
	}
	fc.idle = idle
	return true
}

// end closes fc (reset when rst) unless ResetIdle or Close did already.
func (b *FaultBackend) end(fc *faultConn, rst bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.conns[fc]; !ok {
		return
	}
	if rst {
		b.dropLocked(fc)
		return
	}
	_ = fc.Close()
	delete(b.conns, fc)
	close(fc.gone)
}

func (b *FaultBackend) handle(fc *faultConn) {
	defer b.wg.Done()
	br := bufio.NewReader(fc)
	for {
		if _, err := br.Peek(1); err != nil || !b.setIdle(fc, false) {
			b.end(fc, false)
			return
		}
		req, err := http.ReadRequest(br)
		if err != nil {
			b.end(fc, false)
			return
		}
		id := req.Header.Get("X-Request-Id")
		b.mu.Lock()
		b.started[id]++
		n := b.started[id]
		b.mu.Unlock()
		f := b.decide(req, n)
		if f.Reset {
			_, _ = io.CopyN(io.Discard, req.Body, f.ReadBody)
			b.end(fc, true)
			return
		}
		h := sha256.New()
		size, err := io.Copy(h, req.Body)
		if err != nil {
			b.end(fc, false)
			return
		}
		if !b.hold(fc, f) {
			return
		}
		b.mu.Lock()
		b.answered[id]++
		b.mu.Unlock()
		got := fmt.Sprintf("%d:%s", size, hex.EncodeToString(h.Sum(nil))[:16])
		if _, err := fmt.Fprintf(fc, "HTTP/1.1 200 OK\r\nX-Got: %s\r\nContent-Length: 3\r\n\r\nok\n", got); err != nil {
			b.end(fc, false)
			return
		}
		if !b.setIdle(fc, true) {
			return
		}
		if f.Park {
			<-fc.gone // ResetIdle or Close
			return
		}
	}
}

// hold waits for f.Wait and f.Delay; false when fc was closed meanwhile (Close).
func (b *FaultBackend) hold(fc *faultConn, f Fault) bool {
	if f.Wait != nil {
		select {
		case <-f.Wait:
		case <-fc.gone:
			return false
		}
	}
	if f.Delay > 0 {
		select {
		case <-time.After(f.Delay):
		case <-fc.gone:
			return false
		}
	}
	return true
}
