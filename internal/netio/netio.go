// Package netio reads and writes TCP sockets through the runtime's poller but without its
// blocking-syscall bookkeeping.
//
// net.Conn's Read and Write enter every read(2)/write(2) through syscall.Syscall, which tells
// the scheduler the goroutine may block: the P is marked in-syscall, and when the call is slow
// (on a loaded or virtualised machine, a loopback write that delivers to the peer often is)
// sysmon hands the P to another thread, which costs a futex wake-up and a context switch.
// The sockets are non-blocking, so the calls never block: Conn makes them with
// syscall.RawSyscall inside syscall.RawConn's Read/Write callbacks, which still park the
// goroutine on the poller on EAGAIN and still honour deadlines and Close.
//
// The calls are recvfrom(2) and sendto(2), not read(2) and write(2): on a socket they do the
// same, minus the VFS layer (file position lock, read_iter/write_iter) that read and write
// pass through first; sendto's MSG_NOSIGNAL also spares a SIGPIPE on a reset connection.
package netio

import (
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// Conn is a net.Conn whose Read and Write skip the runtime's syscall bookkeeping. Every
// other method is the wrapped connection's.
//
// Unlike net.Conn it is not safe for concurrent Reads, or concurrent Writes (a Read and a
// Write may overlap): each keeps its call's state in the Conn. Sluice reads and writes a
// connection from one goroutine at a time. The race detector does not see the socket
// buffers that RawSyscall reads into or writes from.
type Conn struct {
	net.Conn
	rc syscall.RawConn

	// The in-flight call's arguments and results, so that the callbacks are bound once
	// and a Read or Write allocates nothing. A Read and a Write may run at the same time,
	// so each has its own.
	rbuf []byte
	rn   int
	rerr syscall.Errno
	rfn  func(uintptr) bool
	wbuf []byte
	wn   int
	werr syscall.Errno
	wfn  func(uintptr) bool

	// The deadlines armed through this Conn (zero: none), so that Extend can tell when the
	// armed one already fits. Every deadline must be set through the Conn for them to hold.
	rdl, wdl time.Time

	// PeekNow's result; pmu serialises PeekNow (a pool's sweeper and its checkout may look at
	// the same idle connection).
	pmu    sync.Mutex
	peeked PeekResult
	reset  bool // PeekReset's result
	pfn    func(uintptr)
	rstFn  func(uintptr)
	waitFn func(uintptr) bool

	// ReadNow's and WriteNow's callbacks: the same calls as Read and Write, made once in
	// RawConn.Control (no poller, no deadline); ready is false when they met EAGAIN.
	rnowFn, wnowFn func(uintptr)
	rready, wready bool
	// SendRead's callback, and whether its next call is the first (the send).
	srFn      func(uintptr) bool
	sendFirst bool
	// HoldNextWrite's state: the next Write's bytes are held (a slice of the caller's
	// buffer, untouched until sent) for the next Read to send with SendRead. HoldWrites
	// holds copies instead, in hbuf, of every Write until that Read.
	holdNext, holdCopy bool
	held, hbuf         []byte
	// The watch of waits (see Watch) and the state of a watched Read's and Write's first
	// try.
	watch                func() bool
	watchFirst, watchMax time.Duration
	rtry, wtry           try
}

// Wrap returns nc wrapped in a Conn when it is a TCP connection with a file descriptor, and
// nc itself otherwise.
func Wrap(nc net.Conn) net.Conn {
	tc, ok := nc.(*net.TCPConn)
	if !ok {
		return nc
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nc
	}
	c := &Conn{Conn: nc, rc: rc}
	c.rfn = c.readFD
	c.wfn = c.writeFD
	c.pfn = func(fd uintptr) { c.peeked = peekFD(fd) }
	c.rstFn = func(fd uintptr) {
		_, errno := Peek(fd)
		c.reset = errno != 0 && errno != syscall.EAGAIN && errno != syscall.EINTR
	}
	c.waitFn = func(fd uintptr) bool { return peekFD(fd) != PeekNothing }
	c.rnowFn = func(fd uintptr) { c.rready = c.readFD(fd) }
	c.wnowFn = func(fd uintptr) { c.wready = c.writeFD(fd) }
	c.srFn = c.sendReadFD
	c.rtry.once, c.wtry.once = c.rtry.run, c.wtry.run
	return c
}

// Read reads like net.Conn's Read: io.EOF at the peer's FIN, the poller's error on a
// deadline or Close.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if c.held != nil {
		return c.readHeld(b)
	}
	if c.holdCopy {
		c.holdCopy = false // HoldWrites with nothing written: nothing to send
	}
	c.rbuf, c.rn, c.rerr = b, 0, 0
	err := c.readWait(c.rfn)
	n, errno := c.rn, c.rerr
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, renameOp(err, "read")
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// nonblocking makes a system call on a non-blocking descriptor, again when a signal
// interrupts it. ready is false on EAGAIN (the caller's RawConn callback then returns false
// and the runtime's poller waits); otherwise r is the result (0 on an error) and errno the
// error, if any.
func nonblocking(trap, a1, a2, a3, a4, a5, a6 uintptr) (r uintptr, errno syscall.Errno, ready bool) {
	for {
		r, _, e := syscall.RawSyscall6(trap, a1, a2, a3, a4, a5, a6)
		switch e {
		case 0:
			return r, 0, true
		case syscall.EINTR:
		case syscall.EAGAIN:
			return 0, 0, false
		default:
			return 0, e, true
		}
	}
}

func (c *Conn) readFD(fd uintptr) bool {
	n, e, ready := nonblocking(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&c.rbuf[0])), uintptr(len(c.rbuf)), 0, 0, 0)
	c.rn, c.rerr = int(n), e
	return ready
}

// Write writes all of b unless an error stops it, like net.Conn's Write.
func (c *Conn) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	if c.holdNext {
		c.holdNext, c.held = false, b
		return len(b), nil
	}
	if c.holdCopy {
		if len(c.hbuf)+len(b) <= MaxHeldCopy {
			c.hbuf = append(c.hbuf, b...)
			c.held = c.hbuf
			return len(b), nil
		}
		// Too much to hold: what is held goes first, with an ordinary write.
		c.holdCopy = false
		if err := c.SendHeld(); err != nil {
			return 0, err
		}
	}
	if c.held != nil {
		return 0, errHeldUnsent
	}
	c.wbuf, c.wn, c.werr = b, 0, 0
	err := c.writeWait(c.wfn)
	n, errno := c.wn, c.werr
	c.wbuf = nil
	switch {
	case err != nil:
		return n, renameOp(err, "write")
	case errno != 0:
		return n, c.opError("write", errno)
	}
	return n, nil
}

func (c *Conn) writeFD(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		p := c.wbuf[c.wn:]
		n, e, ready := nonblocking(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), sendFlags, 0, 0)
		if !ready {
			return false
		}
		if e != 0 {
			c.werr = e
			return true
		}
		c.wn += int(n)
	}
	return true
}

// SendError is the error of [Conn.SendRead] when its write failed: the request did not all
// reach the socket, and the caller must judge the failure as a write's (by the bytes sent),
// not as a read's.
type SendError struct{ Err error }

func (e *SendError) Error() string { return e.Err.Error() }
func (e *SendError) Unwrap() error { return e.Err }

// SendRead writes w and then reads into r, like Write then Read, but in one poller call: the
// write is made inside the read's callback, after the poller reset the socket's readiness, so
// the read that follows can wait for the answer's own event at once instead of first trying a
// read that finds nothing (one system call fewer per exchange, the one that returns EAGAIN).
// An answer cannot arrive before the request that asks for it, so no event is lost; bytes or a
// close that came earlier are for the caller's reuse check (Peek), not for this call.
//
// The write does not wait: when the socket does not take all of w at once, the rest is
// written by Write (under the write deadline), and then Read runs. sent is the count of w's
// bytes written; a failed write returns a *SendError. Otherwise n and err are Read's. A
// poller error before the write (a deadline already past, the conn closed) returns sent 0.
// Like Read and Write, it must not run alongside another Read or Write.
func (c *Conn) SendRead(w, r []byte) (sent, n int, err error) {
	if len(w) == 0 {
		n, err = c.Read(r)
		return 0, n, err
	}
	if len(r) == 0 {
		sent, err = c.Write(w)
		if err != nil {
			err = &SendError{err}
		}
		return sent, 0, err
	}
	c.wbuf, c.wn, c.werr = w, 0, 0
	c.rbuf, c.rn, c.rerr = r, 0, 0
	c.sendFirst = true
	perr := c.readWait(c.srFn)
	sent, werr := c.wn, c.werr
	n, rerr := c.rn, c.rerr
	c.wbuf, c.rbuf = nil, nil
	switch {
	case werr != 0:
		return sent, 0, &SendError{c.opError("write", werr)}
	case sent < len(w) && perr == nil:
		// The socket's buffer was full: the rest waits for room like any write.
		m, err := c.Write(w[sent:])
		sent += m
		if err != nil {
			return sent, 0, &SendError{err}
		}
		n, err = c.Read(r)
		return sent, n, err
	case perr != nil:
		return sent, 0, renameOp(perr, "read")
	case rerr != 0:
		return sent, 0, c.opError("read", rerr)
	case n == 0:
		return sent, 0, io.EOF
	}
	return sent, n, nil
}

// SendFailure returns err as SendRead's *SendError (a held send's failure too), or nil when it
// is another error. A type assertion, not errors.As: the error reaches a reader above
// unwrapped (bufio and crypto/tls pass a socket's read errors on as they are), and errors.As
// would move its target to the heap on every call.
func SendFailure(err error) *SendError {
	se, _ := err.(*SendError)
	return se
}

// errHeldUnsent is a Write while held bytes wait for their Read: a misuse (the held bytes
// live in the caller's buffer, which this write went through), refused rather than sent.
var errHeldUnsent = errors.New("netio: a write came while held bytes waited for the next read")

// HoldNextWrite makes the next Write keep its bytes, unsent, for the next Read to send with
// SendRead, in the poller call that waits for the answer: a server hands a response's last
// flush to the wait for the next request this way. The caller must not change those bytes
// (a bufio.Writer's buffer: no write through it) until they are sent, and must call
// SendHeld before closing or when the Read failed without sending them (Held).
func (c *Conn) HoldNextWrite() { c.holdNext = true }

// MaxHeldCopy bounds what HoldWrites holds: a larger response goes out as it is written.
const MaxHeldCopy = 64 << 10

// HoldWrites is HoldNextWrite for a writer that cannot lend its buffers (crypto/tls writes
// each record from a pooled buffer and may write several records for one response): every
// Write until the next Read is copied and held, up to MaxHeldCopy in all, and that Read
// sends them with SendRead. The copy buffer stays with the Conn for the next response until
// ReleaseHeldBuffer.
func (c *Conn) HoldWrites() { c.holdCopy = true }

// ReleaseHeldBuffer lets go of HoldWrites' copy buffer (a connection going idle for long).
func (c *Conn) ReleaseHeldBuffer() {
	if c.held == nil {
		c.hbuf = nil
	}
}

// Held reports whether bytes held by HoldNextWrite or HoldWrites wait to be sent.
func (c *Conn) Held() bool { return c.held != nil }

// SendHeld writes the held bytes, if any, with an ordinary Write, and ends HoldWrites.
func (c *Conn) SendHeld() error {
	c.holdCopy = false
	h := c.held
	if h == nil {
		return nil
	}
	c.held = nil
	_, err := c.Write(h)
	c.hbuf = c.hbuf[:0]
	return err
}

// readHeld is Read with held bytes: SendRead sends them and reads. Bytes not sent because
// the poller failed first (a deadline already past) stay held.
func (c *Conn) readHeld(b []byte) (int, error) {
	h := c.held
	c.held, c.holdCopy = nil, false
	sent, n, err := c.SendRead(h, b)
	if sent < len(h) && SendFailure(err) == nil {
		c.held = h[sent:]
	} else {
		c.hbuf = c.hbuf[:0]
	}
	return n, err
}

// sendReadFD is SendRead's callback: the first call writes what the socket takes at once
// and, when it took everything, returns false so that the poller waits for the answer
// without a read first; every later call reads.
func (c *Conn) sendReadFD(fd uintptr) bool {
	if !c.sendFirst {
		return c.readFD(fd)
	}
	c.sendFirst = false
	// writeFD is Write's callback: false when the socket's buffer filled (SendRead then
	// finishes the write as an ordinary one), true when all was sent or the send failed.
	if !c.writeFD(fd) || c.werr != 0 {
		return true
	}
	return false
}

// ErrWouldBlock is the error of [Conn.ReadNow] and [Conn.WriteNow] when the call would have
// to wait. It is a net.Error whose Timeout and Temporary are true, like a deadline's, so that
// a reader above (crypto/tls) takes it as a passing condition, not a broken connection.
var ErrWouldBlock net.Error = wouldBlock{}

type wouldBlock struct{}

func (wouldBlock) Error() string   { return "operation would block" }
func (wouldBlock) Timeout() bool   { return true }
func (wouldBlock) Temporary() bool { return true }

// ReadNow reads what has already arrived, without waiting and whatever the read deadline:
// n > 0 bytes, io.EOF at the peer's FIN, [ErrWouldBlock] when nothing has arrived, or the
// socket's error (ECONNRESET). Like Read, it must not run alongside another Read.
func (c *Conn) ReadNow(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.rbuf, c.rn, c.rerr, c.rready = b, 0, 0, false
	err := c.rc.Control(c.rnowFn)
	n, errno, ready := c.rn, c.rerr, c.rready
	c.rbuf = nil
	switch {
	case err != nil:
		return 0, renameOp(err, "read")
	case !ready:
		return 0, ErrWouldBlock
	case errno != 0:
		return 0, c.opError("read", errno)
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

// WriteNow writes what the socket takes at once, without waiting and whatever the write
// deadline: all of b, or the part taken and [ErrWouldBlock] when the socket's buffer is full,
// or the socket's error. Like Write, it must not run alongside another Write.
func (c *Conn) WriteNow(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.wbuf, c.wn, c.werr, c.wready = b, 0, 0, false
	err := c.rc.Control(c.wnowFn)
	n, errno, ready := c.wn, c.werr, c.wready
	c.wbuf = nil
	switch {
	case err != nil:
		return n, renameOp(err, "write")
	case errno != 0:
		return n, c.opError("write", errno)
	case !ready:
		return n, ErrWouldBlock
	}
	return n, nil
}

// SetReadDeadline sets the read deadline exactly, like net.Conn's.
func (c *Conn) SetReadDeadline(t time.Time) error {
	c.rdl = t
	return c.Conn.SetReadDeadline(t)
}

// SetWriteDeadline sets the write deadline exactly, like net.Conn's.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	c.wdl = t
	return c.Conn.SetWriteDeadline(t)
}

// SetDeadline sets both deadlines exactly, like net.Conn's.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rdl, c.wdl = t, t
	return c.Conn.SetDeadline(t)
}

// ExtendRead makes reads time out no earlier than t and no later than t+late (a zero t: no
// deadline). When the deadline armed already falls in that window it is kept; otherwise
// t+late is armed, so that a busy connection re-arms once per late, not once per request:
// each arming moves a runtime timer (~200-300 ns, several per request), and a request's
// timeouts are seconds long, not exact to the microsecond.
func (c *Conn) ExtendRead(t time.Time, late time.Duration) error {
	if fits(c.rdl, t, late) {
		return nil
	}
	return c.SetReadDeadline(arm(t, late))
}

// ExtendWrite is ExtendRead for writes.
func (c *Conn) ExtendWrite(t time.Time, late time.Duration) error {
	if fits(c.wdl, t, late) {
		return nil
	}
	return c.SetWriteDeadline(arm(t, late))
}

func fits(armed, t time.Time, late time.Duration) bool {
	if t.IsZero() || armed.IsZero() {
		return t.IsZero() && armed.IsZero()
	}
	return !armed.Before(t) && armed.Sub(t) <= late
}

func arm(t time.Time, late time.Duration) time.Time {
	if t.IsZero() {
		return t
	}
	return t.Add(late)
}

// CloseWrite half-closes c (a FIN after what was written) when c, or the connection it
// wraps, can; otherwise it does nothing.
func CloseWrite(c net.Conn) error {
	switch cc := c.(type) {
	case interface{ CloseWrite() error }:
		return cc.CloseWrite()
	case *Conn:
		return CloseWrite(cc.Conn)
	}
	return nil
}

// Extender is a connection whose deadlines can be extended lazily (a Conn, or a wrapper of one).
type Extender interface {
	ExtendRead(t time.Time, late time.Duration) error
	ExtendWrite(t time.Time, late time.Duration) error
}

// ExtendRead calls nc's ExtendRead when it has one, and sets t exactly otherwise.
func ExtendRead(nc net.Conn, t time.Time, late time.Duration) error {
	if e, ok := nc.(Extender); ok {
		return e.ExtendRead(t, late)
	}
	return nc.SetReadDeadline(t)
}

// ExtendWrite calls nc's ExtendWrite when it has one, and sets t exactly otherwise.
func ExtendWrite(nc net.Conn, t time.Time, late time.Duration) error {
	if e, ok := nc.(Extender); ok {
		return e.ExtendWrite(t, late)
	}
	return nc.SetWriteDeadline(t)
}

// ArmRead bounds the next reads on nc by d from now (none when d <= 0), up to Slack(d) late:
// ExtendRead for a timeout.
func ArmRead(nc net.Conn, d time.Duration) error {
	if d <= 0 {
		return ExtendRead(nc, time.Time{}, 0)
	}
	return ExtendRead(nc, time.Now().Add(d), Slack(d))
}

// ArmWrite is ArmRead for writes.
func ArmWrite(nc net.Conn, d time.Duration) error {
	if d <= 0 {
		return ExtendWrite(nc, time.Time{}, 0)
	}
	return ExtendWrite(nc, time.Now().Add(d), Slack(d))
}

// Slack is how late a timeout of d may fire when it is armed lazily: an eighth of d, at most
// 250 ms (nginx lets its timers run up to 300 ms late for the same saving).
func Slack(d time.Duration) time.Duration {
	return min(d/8, 250*time.Millisecond)
}

// renameOp makes the poller's errors (deadline, closed) read as net.Conn's do: "read tcp ...",
// not "raw-read tcp ...", in logs and error details.
func renameOp(err error, op string) error {
	if oe, ok := err.(*net.OpError); ok {
		oe.Op = op
	}
	return err
}

func (c *Conn) opError(op string, errno syscall.Errno) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: os.NewSyscallError(op, errno)}
}

// PeekResult is what a look at a socket that consumes nothing found.
type PeekResult int

const (
	PeekNothing PeekResult = iota // nothing to read yet
	PeekData                      // bytes are waiting
	PeekClosed                    // the peer closed (FIN) or the socket failed (RST, ...)
)

// PeekNow looks at the socket without consuming or waiting: whether the peer sent bytes,
// closed, or nothing yet. The error is the poller's (the connection was closed here).
func (c *Conn) PeekNow() (PeekResult, error) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	err := c.rc.Control(c.pfn)
	return c.peeked, err
}

// PeekReset is PeekNow for a peer that may half-close: it reports whether the socket failed
// (the peer reset it, or another error is pending). The peer's FIN is not a failure: a peer
// may shut down its sending side and still read (RFC 9112 §9.6). The kernel reports a reset
// once: to the first call that looks (a read, a peek), so only a caller that owns the
// socket's reads sees it here. Once a FIN has arrived, a later reset shows only on a write.
func (c *Conn) PeekReset() (bool, error) {
	c.pmu.Lock()
	defer c.pmu.Unlock()
	err := c.rc.Control(c.rstFn)
	return c.reset, err
}

// WaitReadable waits, under the read deadline, until the socket has bytes, the peer's close
// or an error to report, without consuming anything (an idle connection needs no buffer).
func (c *Conn) WaitReadable() error {
	return c.rc.Read(c.waitFn)
}

func peekFD(fd uintptr) PeekResult {
	n, errno := Peek(fd)
	switch {
	case n > 0:
		return PeekData
	case errno == syscall.EAGAIN || errno == syscall.EINTR:
		return PeekNothing
	default:
		return PeekClosed
	}
}

// Peek looks at socket fd without consuming or blocking (recv with MSG_PEEK|MSG_DONTWAIT):
// n > 0 means bytes wait, n == 0 with errno 0 means the peer's FIN arrived, EAGAIN means
// nothing yet, any other errno means the socket failed.
func Peek(fd uintptr) (n int, errno syscall.Errno) {
	var b [1]byte
	r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&b[0])), 1,
		syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), 0
}
