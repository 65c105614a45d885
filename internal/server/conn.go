package server

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"sluice/internal/h1"
	"sluice/internal/netio"
	"sluice/internal/reason"
)

var syscallEMFILE = syscall.EMFILE

// Connection states, for graceful shutdown: an idle connection (between requests) is closed at
// once, an active one finishes its request first.
const (
	stateActive int32 = iota
	stateIdle
)

// idleFastWait is how long a keep-alive connection keeps its buffers while waiting for the
// client's next request.
const idleFastWait = 10 * time.Millisecond

// maxDrain is how much unread request body the server discards to keep a connection alive
// after a handler answered without reading the whole body.
const maxDrain = 256 << 10

// lingerTime and lingerMaxBytes bound the lingering close of a connection that closes with
// request bytes unread (see lingerClose): it reads (and drops) them after its response for
// lingerTime at most, and lingerMaxBytes at most. Either way a client that goes on sending
// cannot hold the connection or make the server read for it any longer; what it sends
// past them meets a reset. 64 MiB is four times the largest body the tests refuse early
// (16 MiB, sent at once). Over loopback the byte bound ends first (64 MiB are read in 30 to
// 110 ms, where 2 s let a client make the server read 3.3 GB), below about 270 Mbit/s the
// time bound.
const (
	lingerTime     = 2 * time.Second
	lingerMaxBytes = 64 << 20
)

var bufPool = sync.Pool{New: func() any { return new(connBufs) }}

// connBufs is what a connection needs only while it carries a request: its buffers and the
// Exchange (whose request head buffers it keeps for the next request).
type connBufs struct {
	br *bufio.Reader
	bw *bufio.Writer
	ex Exchange
}

type conn struct {
	srv      *Server
	nc       net.Conn
	rw       net.Conn    // nc for the buffers' reads and writes (netio.Wrap)
	nio      *netio.Conn // rw when it is one (a TCP connection), for peeks; else nil
	tlsSock  *netio.Conn // under TLS, the socket when it is one: responses are held on it (holdable)
	st       *Settings
	br       *bufio.Reader
	bw       *bufio.Writer
	clientIP string

	mu       sync.Mutex // guards state transitions against Shutdown's wake-up, and onCancel
	state    int32
	onCancel func() // run when ctx is canceled (Exchange.OnCancel)

	// ctx is the context of the connection's requests (Exchange.Context), canceled with a
	// *reason.Error cause when the client is found gone or the shutdown grace period ends.
	ctx    context.Context
	cancel context.CancelCauseFunc

	served atomic.Int64
	ex     *Exchange            // nil while idle
	tls    *tls.ConnectionState // nil: plain TCP
	// clientSubject is the verified client certificate's subject, rendered once at the
	// handshake (clientSubject in tls.go); "" without one.
	clientSubject string
	// verified is the listener's client certificate policy the connection's certificate (or
	// its lack of one) last passed; distrust, why it failed the policy that replaced it
	// (clientauth.go). Like clientSubject, the connection's goroutine's, or under HTTP/2 its
	// read loop's.
	verified *clientAuth
	distrust error
	// certEnd is when the verified client certificate chain stops verifying (its earliest
	// NotAfter: chainsEnd), in Unix seconds (unixEnd), set with verified; 0 without a
	// verified certificate. A request that starts in that second or later is refused
	// (clientTrusted).
	certEnd int64
	// tlsDrained: a read through TLS just found nothing buffered, so the idle wait can
	// watch the socket (waitReadable).
	tlsDrained bool
	// tlsFrame follows the record framing of the bytes read under TLS (tlsSocket).
	tlsFrame *netio.TLSFraming

	bufs *connBufs // nil while idle
	h2   *h2Conn   // set (under mu) when the connection became HTTP/2 (h2.go)
}

func newConn(s *Server, nc net.Conn, st *Settings) *conn {
	c := &conn{srv: s, nc: nc, rw: netio.Wrap(nc), st: st, state: stateActive}
	c.ctx, c.cancel = context.WithCancelCause(context.Background())
	c.nio, _ = c.rw.(*netio.Conn)
	if host, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
		c.clientIP = host
	}
	return c
}

// serve runs the connection's request loop. resumeIdle: the connection was handed over in a
// long idle wait (see waitNextRequest) and waits for its next request first.
func (c *conn) serve(resumeIdle bool) {
	handedOver := false
	defer func() {
		if !handedOver {
			c.cancel(errConnClosed)
			c.noteTLSFailure()
			c.rw.Close() // a TLS connection sends its close_notify
			c.releaseBufs()
			c.srv.forget(c)
		}
	}()
	defer func() {
		if v := recover(); v != nil {
			// The handler recovers its own panics (and knows the request); this is the
			// server's, or a handler's that did not.
			c.srv.log.Error("panic serving connection", "remote", c.clientIP, "panic", v, "stack", string(debug.Stack()))
		}
	}()

	if resumeIdle {
		if !c.waitIdle() {
			return
		}
	} else {
		if c.st.ProxyProtocol != nil && !c.readProxyHeader() { // proxyproto.go
			return
		}
		if c.st.TLS != nil && !c.handshake() {
			return
		}
		if c.h2Offered() {
			c.serveH2()
			return
		}
		c.acquireBufs()
	}
	for n := 0; ; n++ {
		if n > 0 {
			switch c.waitNextRequest() {
			case waitStop:
				return
			case waitHandOver:
				// The idle wait continues on a new goroutine: its stack starts small,
				// while this one's grew with the request just served and would be held,
				// unused, for as long as the client idles (~5 KB per idle connection).
				handedOver = true
				go c.serve(true)
				return
			}
		}
		c.setActive()
		if !h1.HeadBuffered(c.br) {
			// The head has not fully arrived: bound the wait for the rest. A complete one
			// is parsed without reading, under the wait's deadline, and the body reads
			// arm their own (ReadBody).
			if c.br.Buffered() > 0 {
				c.setReadDeadline(c.st.ReadHeaderTimeout)
			} else if !c.awaitFirstByte() {
				return
			}
		}
		// The request's first byte is here (or its whole head): its time runs from now
		// (Exchange.Start), for the access log and metrics, a refused head's too.
		at := time.Now()
		if n == 0 && !resumeIdle && c.h2cPreface() {
			c.serveH2()
			return
		}
		ex := c.ex // changes when the connection idled and got its buffers back
		ex.reset()
		ex.Start = at
		err := h1.ReadRequest(c.br, &ex.Req, c.st.Limits)
		if err != nil {
			c.rejectRequest(err)
			return
		}
		if err := c.clientTrusted(at); err != nil {
			c.refuseReadHead(ex, 421, reason.ClientCertNoLongerTrusted, untrustedDetail(err))
			return
		}
		if !c.applyUnderscores(ex) {
			return
		}
		ex.start()
		c.srv.handler.ServeH1(ex)
		if !ex.finish() {
			c.linger(ex)
			return
		}
		c.served.Add(1)
	}
}

// awaitFirstByte waits, up to read_header_timeout, for the first byte of a connection that
// has nothing buffered (a new one, or one back from the idle wait). It waits as idle, so that
// Shutdown's wake-up ends it, and leaves read_header_timeout armed for the rest of the head.
func (c *conn) awaitFirstByte() bool {
	var end time.Time // zero: no timeout
	d := c.st.ReadHeaderTimeout
	if d > 0 {
		end = time.Now().Add(d)
	}
	if !c.armIdle(end, netio.Slack(d)) {
		return false
	}
	if _, err := c.br.Peek(1); err != nil {
		return false
	}
	c.setActive()
	netio.ExtendRead(c.rw, end, netio.Slack(d)) // a Shutdown wake-up may have come between Peek and setActive
	return true
}

// What waitNextRequest found.
const (
	waitNext     = iota // the next request's first byte is here
	waitStop            // close the connection (idle timeout, client gone, shutting down)
	waitHandOver        // a long idle wait: armed, buffers released; continue with waitIdle
)

// waitNextRequest waits a moment, with the buffers in hand, for the first byte of the next
// request; past that it arms the idle timeout, releases the buffers and reports waitHandOver.
func (c *conn) waitNextRequest() int {
	// finish may have left the last response's bytes buffered (Exchange.holdable): they go
	// out with the first wait's read below, or now when there is no such wait.
	held := c.bw.Buffered() > 0
	fast := c.st.IdleTimeout <= 0 || c.st.IdleTimeout > 2*idleFastWait
	if held && (c.br.Buffered() > 0 || !fast) {
		if c.flushHeld() != nil {
			return waitStop
		}
		held = false
	}
	if c.br.Buffered() > 0 {
		return waitNext // pipelined
	}
	// A busy client sends its next request within moments: wait for it with the buffers in
	// hand (one read). Past that, the buffers go back to the pool while the connection idles:
	// an idle keep-alive connection then costs its goroutine and a few hundred bytes, not
	// 24 KiB.
	start := time.Now()
	var idleEnd time.Time
	if d := c.st.IdleTimeout; d > 0 {
		idleEnd = start.Add(d)
	}
	if fast {
		// The wait may run up to idleFastWait late: a busy connection then re-arms it only
		// every few requests.
		if !c.armIdle(start.Add(idleFastWait), idleFastWait) {
			c.flushHeld()
			return waitStop
		}
		if held {
			// The response goes out inside the read's poller call (netio.Conn.SendRead):
			// the client's next request cannot come before it, so the read waits at once.
			c.setWriteDeadline()
			if c.nio != nil {
				c.nio.HoldNextWrite()
			} else {
				c.tlsSock.HoldWrites() // the records crypto/tls writes, copied
			}
			if c.bw.Flush() != nil {
				return waitStop
			}
		}
		_, err := c.br.Peek(1)
		// Whatever the read did, nothing stays held: a deadline already past (Shutdown's
		// wake-up) stops it before it sends, and crypto/tls may have returned the next
		// request from a record it had (pipelined) without reaching the socket.
		if held && c.holdSock().SendHeld() != nil {
			return waitStop
		}
		if err == nil {
			return waitNext
		} else if !errors.Is(err, os.ErrDeadlineExceeded) || netio.SendFailure(err) != nil {
			// A held send that failed surfaces from the read, a write timeout as a
			// timeout too: the response is cut short, and the connection must close.
			return waitStop
		}
		if c.tlsFrame != nil && !c.tlsFrame.AtBoundary() {
			// crypto/tls holds the start of a record: the client's next request has
			// begun, under read_header_timeout (a wait on the socket would give the
			// rest of that record until the idle timeout).
			return waitNext
		}
		// The read through TLS found nothing: crypto/tls holds no complete record and no
		// plaintext (it would have returned them), so the idle wait can watch the socket.
		c.tlsDrained = c.tlsSock != nil
	}
	if !c.armIdle(idleEnd, netio.Slack(c.st.IdleTimeout)) {
		return waitStop
	}
	c.releaseBufs()
	if c.tlsSock != nil {
		c.tlsSock.ReleaseHeldBuffer()
	}
	return waitHandOver
}

// holdSock is the connection's own socket, plain or under TLS; nil when it is not a
// netio.Conn. A complete response's last bytes can be held on it (Exchange.holdable), and the
// waits for a request body are watched on it (Exchange.WatchBody).
func (c *conn) holdSock() *netio.Conn {
	if c.nio != nil {
		return c.nio
	}
	return c.tlsSock
}

// flushHeld sends what finish left buffered (Exchange.holdable), with an ordinary write.
func (c *conn) flushHeld() error {
	if c.bw.Buffered() == 0 {
		return nil
	}
	c.setWriteDeadline()
	return c.bw.Flush()
}

// waitIdle is the long idle wait (armed by waitNextRequest): it holds no buffers until the
// client sends something, then takes them back. It reports whether to read a request.
func (c *conn) waitIdle() bool {
	if !c.waitReadable() {
		return false
	}
	if c.bufs == nil {
		c.acquireBufs()
	}
	return true
}

func (c *conn) acquireBufs() {
	b := bufPool.Get().(*connBufs)
	if b.br == nil {
		b.br = bufio.NewReaderSize(c.rw, 8<<10)
		b.bw = bufio.NewWriterSize(c.rw, 16<<10)
	} else {
		b.br.Reset(c.rw)
		b.bw.Reset(c.rw)
	}
	c.bufs, c.br, c.bw, c.ex = b, b.br, b.bw, &b.ex
	b.ex.c = c
}

func (c *conn) releaseBufs() {
	if c.bufs == nil {
		return
	}
	c.bufs.br.Reset(nil)
	c.bufs.bw.Reset(nil)
	c.bufs.ex.c = nil
	c.bufs.ex.body.Reset(nil, 0, false, 0)
	bufPool.Put(c.bufs)
	c.bufs, c.br, c.bw, c.ex = nil, nil, nil, nil
}

// waitReadable blocks until the client sends something, closes, or the read deadline passes,
// without reading (so no buffer is needed while waiting). It reports whether to go on reading.
// Under TLS it waits on the socket only when crypto/tls was found to hold nothing to return
// (tlsDrained); else it reads through TLS, with the buffers.
func (c *conn) waitReadable() bool {
	sock := c.nio
	if sock == nil && c.tlsDrained {
		sock = c.tlsSock
	}
	c.tlsDrained = false
	if sock == nil {
		c.acquireBufs()
		_, err := c.br.Peek(1)
		return err == nil
	}
	return sock.WaitReadable() == nil
}

// Causes of a request context's cancellation (Exchange.Context).
var (
	errForcedShutdown = reason.New(503, reason.GatewayShutdown, "", errors.New("shutdown grace period ended before the request finished"))
	errClientGone     = reason.New(499, reason.ClientBodyError, "", errors.New("client closed the connection"))
	errStreamCanceled = reason.New(499, reason.ClientBodyError, "", errors.New("client reset the HTTP/2 stream"))
	errConnClosed     = errors.New("client connection closed")
)

// cancelRequest cancels the connection's request context with cause and runs the cancel hook
// (Exchange.OnCancel), once.
func (c *conn) cancelRequest(cause error) {
	c.cancel(cause)
	c.mu.Lock()
	f := c.onCancel
	c.onCancel = nil
	c.mu.Unlock()
	if f != nil {
		f()
	}
}

// setOnCancel sets the cancel hook, or runs f at once when the context is already canceled.
func (c *conn) setOnCancel(f func()) {
	c.mu.Lock()
	if f != nil && c.ctx.Err() != nil {
		c.onCancel = nil
		c.mu.Unlock()
		f()
		return
	}
	c.onCancel = f
	c.mu.Unlock()
}

// setActive marks the connection as carrying a request: Shutdown lets it finish.
func (c *conn) setActive() {
	c.mu.Lock()
	c.state = stateActive
	c.mu.Unlock()
}

// armIdle marks the connection idle and sets its read deadline (up to late after deadline;
// see netio.ExtendRead), unless the server is shutting down. It holds c.mu so that Shutdown's
// wake-up (wakeIfIdle) cannot be overwritten.
func (c *conn) armIdle(deadline time.Time, late time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.srv.closing.Load() {
		return false
	}
	c.state = stateIdle
	netio.ExtendRead(c.rw, deadline, late)
	return true
}

// wakeIfIdle makes an idle connection's wait return so that it can close during Shutdown.
func (c *conn) wakeIfIdle() {
	c.mu.Lock()
	if c.h2 != nil {
		go c.h2.drain() // an HTTP/2 connection drains its streams (h2.go)
	} else if c.state == stateIdle {
		c.rw.SetReadDeadline(time.Unix(1, 0))
	}
	c.mu.Unlock()
}

// setReadDeadline bounds the next reads by d (none when d <= 0), lazily (netio.ArmRead).
// Deadlines are set through c.rw, never c.nc, so that the one armed is always known.
func (c *conn) setReadDeadline(d time.Duration) { netio.ArmRead(c.rw, d) }

// setWriteDeadline bounds the next writes by write_timeout, lazily (netio.ArmWrite).
func (c *conn) setWriteDeadline() { netio.ArmWrite(c.rw, c.st.WriteTimeout) }

// rejectRequest answers a request that could not be parsed, then the connection closes.
// A clean close or a timeout before any request byte gets no answer.
func (c *conn) rejectRequest(err error) {
	var pe *h1.Error
	if !errors.As(err, &pe) {
		// A timeout answers 408 only once a request-line had begun: empty lines before one (a
		// client's stray CRLF after a body) are not a request.
		if errors.Is(err, os.ErrDeadlineExceeded) && c.ex.Req.Started() {
			c.writeSimpleError(408, reason.ClientTimeout, "request head not received in time")
		}
		return
	}
	code := reason.BadRequest
	switch pe.Status {
	case 431, 414:
		code = reason.HeaderTooLarge
	case 501:
		code = reason.NotImplemented
	case 505:
		code = reason.VersionNotSupp
	}
	c.srv.log.Debug("rejected malformed request", "remote", c.clientIP, "status", pe.Status, "why", pe.Reason)
	c.writeSimpleError(pe.Status, code, pe.Reason)
}

// linger ends a connection whose response left request body bytes unread (an early answer,
// a body over the limit) with a lingering close.
func (c *conn) linger(ex *Exchange) {
	if ex.tunneled || ex.bodyDone() {
		return
	}
	c.lingerClose()
}

// lingerClose ends a connection after a response that may have left request bytes unread:
// closing the socket with unread bytes would reset the connection, and a reset may destroy
// the response before the client has read it (the client, still sending, reads only later;
// its write meets the reset first). So the sending side is shut down after the response (a
// FIN; under TLS a close_notify) and what the client still sends is read and dropped until
// it closes too, for lingerTime and lingerMaxBytes at most: the "lingering close" of
// RFC 9112 §9.6 (nginx: lingering_close).
func (c *conn) lingerClose() {
	if c.closeWrite() != nil {
		return
	}
	c.rw.SetReadDeadline(time.Now().Add(lingerTime))
	_, _ = io.CopyN(io.Discard, c.br, lingerMaxBytes)
}

// closeWrite shuts down the sending side of the connection (TLS: close_notify first).
func (c *conn) closeWrite() error {
	if cw, ok := c.rw.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	if tc, ok := c.nc.(*net.TCPConn); ok {
		return tc.CloseWrite()
	}
	return errors.New("cannot half-close")
}

// Rejecter is an optional Handler capability: it is told of requests the server answered
// itself because they could not be parsed or arrived too slowly, so that they are logged and
// counted like any other.
type Rejecter interface {
	Rejected(ex Served, code reason.Code, why string)
}

// writeSimpleError answers a request the server refuses before parsing it whole (a head too
// large, malformed or too slow), then ends the connection with a lingering close: the rest
// of the request is not read (the rest of the head, a body, more requests behind it, a slow
// client still sending).
func (c *conn) writeSimpleError(status int, code reason.Code, detail string) {
	c.answerRefused(status, code, detail)
	c.lingerClose()
}

// refuseReadHead answers a request the server refuses after reading its head whole, and
// ends the connection. Without a body, and with nothing come behind it, the client has
// nothing more to send, and the connection closes at once (as linger: no 2 s lingering
// close for a client waiting on the answer); else with a lingering close. Not ex.bodyDone:
// the body reader is set up only when the request is served (ex.start).
func (c *conn) refuseReadHead(ex *Exchange, status int, code reason.Code, detail string) {
	c.answerRefused(status, code, detail)
	if ex.HasBody() || c.br.Buffered() > 0 {
		c.lingerClose()
	}
}

// answerRefused writes the answer to a request the server refuses itself; the connection is
// to close after it.
func (c *conn) answerRefused(status int, code reason.Code, detail string) {
	ex := c.ex
	ex.closeAfter = true
	shown := ""
	if c.st.ExposeDetails {
		shown = detail
	}
	ex.WriteError(&reason.Error{Status: status, Code: code, Err: errors.New(detail)}, shown)
	ex.Flush() // arms the write deadline: the last one may be long past on a kept-alive connection
	if r, ok := c.srv.handler.(Rejecter); ok {
		r.Rejected(ex, code, detail)
	}
}

// applyUnderscores applies the listener's Underscores policy to the request's header fields.
// It reports false when the request was refused (answered, and the connection is to close).
func (c *conn) applyUnderscores(ex *Exchange) bool {
	if c.st.Underscores == UnderscoresAllow {
		return true
	}
	h := &ex.Req.Header
	n := 0
	for i := range h.Fields {
		if hasUnderscore(&h.Fields[i]) {
			n++
		}
	}
	switch {
	case n == 0:
		return true
	case c.st.Underscores == UnderscoresReject:
		c.refuseReadHead(ex, 400, reason.UnderscoreInHeader, "header field name with an underscore")
		return false
	}
	if c.srv.log.Enabled(c.ctx, slog.LevelDebug) {
		c.srv.log.LogAttrs(c.ctx, slog.LevelDebug, "dropped header fields with underscores", slog.String("remote", c.clientIP),
			slog.String("request_id", ex.RequestID()), slog.Any("fields", underscoreNames(h)))
	}
	ex.droppedHeaders = h.RemoveFunc(hasUnderscore)
	return true
}

func hasUnderscore(f *h1.Field) bool { return bytes.IndexByte(f.Name, '_') >= 0 }

func underscoreNames(h *h1.Header) []string {
	var names []string
	for i := range h.Fields {
		if hasUnderscore(&h.Fields[i]) {
			names = append(names, string(h.Fields[i].Name))
		}
	}
	return names
}

// discardBody reads what is left of the request body, up to maxDrain, so that the connection
// can carry the next request. It reports whether the body was fully consumed.
func (c *conn) discardBody(ex *Exchange) bool {
	if ex.bodyDone() {
		return true
	}
	if ex.Req.Expect100 && !ex.sent100 {
		return false // the client waits for our word; closing is the clean answer
	}
	c.setReadDeadline(time.Second)
	n, err := io.CopyN(io.Discard, &ex.body, maxDrain+1)
	return err == io.EOF && n <= maxDrain
}
