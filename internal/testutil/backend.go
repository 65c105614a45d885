// Package testutil provides loopback HTTP/1.1 backends with exact, adversarial idle
// behaviour for tests of the upstream path: backends that close idle connections (with or
// without advertising Keep-Alive), that race the idle timer against incoming requests, that
// restart with RSTs, and a plain echo backend; and a backend that fails chosen requests
// (reset after part of the body, held answers, connections reset at a given moment). They
// run on raw net.Listeners on 127.0.0.1:0 so their timing is exactly what the test asks for,
// and they count accepted connections and processed request ids (the X-Request-Id header) so
// tests can prove that no request was executed twice.
package testutil

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BackendOptions shapes a [Backend]. The zero value is a keep-alive backend that never
// closes idle connections.
type BackendOptions struct {
	// IdleClose closes (FIN) a connection idle this long. 0 = never.
	IdleClose time.Duration
	// IdleFromArrival starts IdleClose's timer (and RaceWindow's) when a request arrives
	// rather than when its response has been written, as a server whose one deadline
	// covers a request and the wait for the next does: a connection whose last request
	// took long (Delay) is closed that much younger in idle terms.
	IdleFromArrival bool
	// Advertise, if > 0, adds "Keep-Alive: timeout=<Advertise>" (seconds) to responses.
	Advertise int
	// AdvertiseMax, if > 0, adds "max=<remaining>" to the Keep-Alive header, counting down
	// from AdvertiseMax per connection, and closes the connection (FIN) after the last
	// allowed request without saying "Connection: close": the client must honour max.
	AdvertiseMax int
	// RaceWindow, with IdleClose, makes the idle timer race requests: a request that arrives
	// on a connection idle for at least IdleClose-RaceWindow is dropped unread and the
	// connection is reset, as in a capture of the race.
	RaceWindow time.Duration
	// DropNth, if > 0, drops the Nth request of every connection unread and resets it.
	DropNth int
	// CrashEvery, if > 0, makes every CrashEvery-th request the backend receives (counted
	// over all its connections) meet a crash: it is dropped unread and every open connection
	// is reset at once, whatever its idle age, as a backend restart or a load balancer
	// dropping its connections does. The listener stays up. Crashes counts them.
	CrashEvery int
	// CloseAfter, if > 0, answers the CloseAfter-th request of a connection with
	// "Connection: close" and closes it, as a request saying "Connection: close" is: with a
	// lingering close ([CloseLingering]), so what the client still sends meets no reset.
	CloseAfter int
	// Delay is added before each response. A request may ask for more with the header
	// X-Backend-Delay: <Go duration>; either way it is processed (counted for Processed and
	// Duplicates) before the wait, so a reset during it cuts a request that has already run.
	Delay time.Duration
	// BodySize is the response body size in bytes (default: a short text). Ignored by Echo.
	BodySize int
	// Echo answers with a JSON description of the request (method, path, headers).
	Echo bool
	// TLS, when set, serves HTTPS with this config (see CA.ServerConfig). An idle close is
	// then a FIN alone, as Go's servers do, unless CloseNotify sends a close_notify alert
	// before it, as nginx does; a reset (race, DropNth, Restart) sends no alert.
	TLS         *tls.Config
	CloseNotify bool
	// NotifyOnly, with TLS, ends an idle connection with a close_notify alone (its own
	// write), the TCP connection left open: what the peer still sends is read and dropped
	// unprocessed until the peer closes (at most 2 s), as a server that closes TLS and
	// lingers does.
	NotifyOnly bool
	// CloseAfterResponse, if > 0, ends every connection this long after each response (the
	// idle close: a FIN, or close_notify as CloseNotify and NotifyOnly say), whether or not
	// another request came meanwhile, without saying "Connection: close": a backend that
	// never serves a second request on a connection, its close in a write of its own.
	CloseAfterResponse time.Duration
}

// Backend is a loopback HTTP/1.1 server. Create it with [NewBackend] or a named
// constructor; it is closed by t.Cleanup.
type Backend struct {
	opts BackendOptions
	addr string

	mu        sync.Mutex
	ln        net.Listener
	conns     map[net.Conn]struct{}
	processed map[string]int
	closed    bool
	wg        sync.WaitGroup

	accepted atomic.Int64
	requests atomic.Int64
	dropped  atomic.Int64
	received atomic.Int64 // requests seen arriving (CrashEvery counts them)
	crashes  atomic.Int64
	holding  atomic.Int64 // requests processed whose answer waits for a delay
	cut      atomic.Int64 // requests processed whose answer could not be written
}

// NewBackend starts a backend on 127.0.0.1:0.
func NewBackend(t testing.TB, o BackendOptions) *Backend {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testutil: listen: %v", err)
	}
	b := &Backend{opts: o, addr: ln.Addr().String(), ln: ln,
		conns: make(map[net.Conn]struct{}), processed: make(map[string]int)}
	b.wg.Add(1)
	go b.serve(ln)
	t.Cleanup(b.Close)
	return b
}

// IdleCloser closes connections idle for idle (FIN) and sends no Keep-Alive header.
func IdleCloser(t testing.TB, idle time.Duration) *Backend {
	return NewBackend(t, BackendOptions{IdleClose: idle})
}

// AdvertisingCloser sends "Keep-Alive: timeout=<seconds>" and closes connections idle for
// actual (pass seconds*time.Second for an honest backend).
func AdvertisingCloser(t testing.TB, seconds int, actual time.Duration) *Backend {
	return NewBackend(t, BackendOptions{IdleClose: actual, Advertise: seconds})
}

// RacingCloser closes connections idle for idle, and drops unread (with an RST) any request
// arriving on a connection idle for at least idle-window.
func RacingCloser(t testing.TB, idle, window time.Duration) *Backend {
	return NewBackend(t, BackendOptions{IdleClose: idle, RaceWindow: window})
}

// Echo answers every request with its method, path and headers as JSON; keep-alive on.
func Echo(t testing.TB) *Backend {
	return NewBackend(t, BackendOptions{Echo: true})
}

// DialRefused reports whether nothing accepts connections at addr.
func DialRefused(t testing.TB, addr string) bool {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return true
	}
	defer c.Close()
	// Dialing a free port in the ephemeral range can connect to itself (TCP simultaneous
	// open when the kernel picks that same port as the source): nothing listens there.
	return c.LocalAddr().String() == c.RemoteAddr().String()
}

// Addr returns the backend's "host:port".
func (b *Backend) Addr() string { return b.addr }

// Accepted returns the number of connections accepted.
func (b *Backend) Accepted() int64 { return b.accepted.Load() }

// Requests returns the number of requests answered.
func (b *Backend) Requests() int64 { return b.requests.Load() }

// Open returns the number of server-side connections currently open.
func (b *Backend) Open() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.conns)
}

// Dropped returns the number of requests dropped unread by the race, DropNth or CrashEvery.
func (b *Backend) Dropped() int64 { return b.dropped.Load() }

// Crashes returns how many times CrashEvery or Crash reset every connection.
func (b *Backend) Crashes() int64 { return b.crashes.Load() }

// Holding returns how many requests are processed and waiting for their delay (Delay or
// X-Backend-Delay) before their answer: a reset now makes each of them one the backend ran
// but the client never saw answered.
func (b *Backend) Holding() int64 { return b.holding.Load() }

// Unanswered returns how many requests the backend processed but could not answer, their
// connection reset meanwhile (a crash or a restart during their delay): a client must not
// have had them sent again unless they are idempotent.
func (b *Backend) Unanswered() int64 { return b.cut.Load() }

// Processed returns how many times a request with X-Request-Id id was processed.
func (b *Backend) Processed(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.processed[id]
}

// Duplicates returns the request ids processed more than once, sorted.
func (b *Backend) Duplicates() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var d []string
	for id, n := range b.processed {
		if n > 1 {
			d = append(d, id)
		}
	}
	slices.Sort(d)
	return d
}

// Restart closes the listener and resets every connection (RST, SO_LINGER 0), then listens
// again on the same address. Conns idle in a client pool see ECONNRESET.
func (b *Backend) Restart() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("testutil: restart of a closed backend")
	}
	_ = b.ln.Close()
	b.resetAllLocked()
	ln, err := net.Listen("tcp", b.addr)
	if err != nil {
		b.mu.Unlock()
		return fmt.Errorf("testutil: listen again on %s: %w", b.addr, err)
	}
	b.ln = ln
	b.wg.Add(1)
	b.mu.Unlock()
	go b.serve(ln)
	return nil
}

// Close stops the backend and resets its connections. It waits for its goroutines.
func (b *Backend) Close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	_ = b.ln.Close()
	b.resetAllLocked()
	b.mu.Unlock()
	b.wg.Wait()
}

func (b *Backend) resetAllLocked() {
	for c := range b.conns {
		reset(c)
	}
	clear(b.conns)
}

func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = c.Close()
}

func (b *Backend) serve(ln net.Listener) {
	defer b.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b.mu.Lock()
		if b.closed || b.ln != ln {
			b.mu.Unlock()
			reset(c)
			return
		}
		b.conns[c] = struct{}{}
		b.accepted.Add(1)
		b.wg.Add(1)
		b.mu.Unlock()
		go b.handle(c)
	}
}

func (b *Backend) forget(c net.Conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// handle serves one connection. Its idle timer starts when a response has been written, or
// with IdleFromArrival when the request before arrived.
func (b *Backend) handle(raw net.Conn) {
	defer b.wg.Done()
	defer b.forget(raw)
	c, closeIdle := raw, raw.Close
	if b.opts.TLS != nil {
		tc := tls.Server(raw, b.opts.TLS)
		c = tc
		switch {
		case b.opts.NotifyOnly:
			closeIdle = func() error {
				_ = tc.CloseWrite() // close_notify, in a write of its own; no FIN
				_ = raw.SetReadDeadline(time.Now().Add(lingerTime))
				_, _ = io.Copy(io.Discard, raw)
				return raw.Close()
			}
		case b.opts.CloseNotify:
			closeIdle = tc.Close
		}
	}
	br := bufio.NewReader(c)
	bw := bufio.NewWriter(c)
	var arrived time.Time
	for n := 1; ; n++ {
		idleSince := time.Now()
		if b.opts.IdleFromArrival && !arrived.IsZero() {
			idleSince = arrived
		}
		if b.opts.IdleClose > 0 {
			_ = c.SetReadDeadline(idleSince.Add(b.opts.IdleClose))
		}
		if _, err := br.Peek(1); err != nil {
			_ = closeIdle() // idle timeout or peer gone: FIN (after close_notify)
			return
		}
		if b.crash() {
			return
		}
		arrived = time.Now()
		idle := time.Since(idleSince)
		// Only a request after a response can race the idle timer (which starts at the
		// response): a fresh conn's first request that a loaded machine delays is no race.
		race := n > 1 && b.opts.RaceWindow > 0 && b.opts.IdleClose > 0 && idle >= b.opts.IdleClose-b.opts.RaceWindow
		if race || n == b.opts.DropNth {
			b.dropped.Add(1)
			reset(raw)
			return
		}
		_ = c.SetReadDeadline(time.Time{})
		req, err := http.ReadRequest(br)
		if err != nil {
			_ = c.Close()
			return
		}
		_, _ = io.Copy(io.Discard, req.Body)
		_ = req.Body.Close()
		last := req.Close || (b.opts.CloseAfter > 0 && n >= b.opts.CloseAfter)
		silent := b.opts.AdvertiseMax > 0 && n >= b.opts.AdvertiseMax
		b.record(req)
		b.hold(req)
		err = b.respond(bw, req, n, last)
		if err != nil {
			b.cut.Add(1)
		}
		switch {
		case err == nil && !last && b.opts.CloseAfterResponse > 0:
			time.Sleep(b.opts.CloseAfterResponse)
			_ = closeIdle() // unread requests, if any, are never processed
			return
		case err != nil || silent:
			_ = closeIdle() // cut, or a silent close (FIN): a request sent anyway meets a reset
			return
		case last:
			if tc, ok := c.(*tls.Conn); ok && b.opts.CloseNotify {
				_ = tc.CloseWrite() // close_notify
			}
			CloseLingering(raw)
			return
		}
	}
}

// lingerTime bounds how long [CloseLingering] reads what the peer still sends.
const lingerTime = 2 * time.Second

// CloseLingering closes c after an answer that ends the connection as servers do (the
// lingering close of RFC 9112 §9.6; nginx's lingering_close): its sending side first (a FIN
// after the answer), then it reads and drops what the peer still sends until the peer
// closes, for lingerTime at most. Closing a socket with unread input makes the kernel send
// a reset instead of a FIN, and a peer still sending (a request body, pipelined requests,
// an HTTP/2 preface's frames) meets the reset before it reads the answer: the answer is
// then lost to a test that asserts on it. That made a CI flake (an HTTP/1.1 server's answer
// to the HTTP/2 preface, see TestGRPCH2CUpstreamSpeaksHTTP1).
func CloseLingering(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok && tc.CloseWrite() == nil {
		_ = c.SetReadDeadline(time.Now().Add(lingerTime))
		_, _ = io.Copy(io.Discard, c)
	}
	_ = c.Close()
}

// crash counts a request arriving and, on every CrashEvery-th, resets every open connection
// (the arriving request's among them, unread) and reports true.
func (b *Backend) crash() bool {
	if b.opts.CrashEvery <= 0 || b.received.Add(1)%int64(b.opts.CrashEvery) != 0 {
		return false
	}
	b.dropped.Add(1)
	b.Crash()
	return true
}

// Crash resets every open connection at once, as CrashEvery does (counted by Crashes); the
// listener stays up.
func (b *Backend) Crash() {
	b.crashes.Add(1)
	b.mu.Lock()
	b.resetAllLocked()
	b.mu.Unlock()
}

func (b *Backend) record(req *http.Request) {
	b.requests.Add(1)
	if id := req.Header.Get("X-Request-Id"); id != "" {
		b.mu.Lock()
		b.processed[id]++
		b.mu.Unlock()
	}
}

// hold waits Delay, or the X-Backend-Delay the request asks for, counted by Holding.
func (b *Backend) hold(req *http.Request) {
	d := b.opts.Delay
	if v, err := time.ParseDuration(req.Header.Get("X-Backend-Delay")); err == nil {
		d = v
	}
	if d <= 0 {
		return
	}
	b.holding.Add(1)
	defer b.holding.Add(-1)
	time.Sleep(d)
}

func (b *Backend) respond(w *bufio.Writer, req *http.Request, n int, last bool) error {
	body := b.body(req)
	fmt.Fprintf(w, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n", len(body))
	if b.opts.Echo {
		w.WriteString("Content-Type: application/json\r\n")
	}
	var ka []string
	if b.opts.Advertise > 0 {
		ka = append(ka, "timeout="+strconv.Itoa(b.opts.Advertise))
	}
	if b.opts.AdvertiseMax > 0 && n < b.opts.AdvertiseMax {
		ka = append(ka, "max="+strconv.Itoa(b.opts.AdvertiseMax-n))
	}
	if len(ka) > 0 && !last {
		w.WriteString("Keep-Alive: " + strings.Join(ka, ", ") + "\r\n")
	}
	if last {
		w.WriteString("Connection: close\r\n")
	}
	w.WriteString("\r\n")
	w.Write(body)
	return w.Flush()
}

func (b *Backend) body(req *http.Request) []byte {
	if b.opts.Echo {
		out, _ := json.Marshal(struct {
			Method string      `json:"method"`
			Path   string      `json:"path"`
			Header http.Header `json:"header"`
		}{req.Method, req.URL.RequestURI(), req.Header})
		return out
	}
	if b.opts.BodySize > 0 {
		return []byte(strings.Repeat("x", b.opts.BodySize))
	}
	return []byte("ok\n")
}
