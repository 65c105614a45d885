package connpool

import (
	"bufio"
	"errors"
	"net"
	"sync/atomic"
	"time"

	"sluice/internal/netio"
)

const bufSize = 4 << 10

var lastID atomic.Uint64

type connState uint8

const (
	stateInUse connState = iota
	stateIdle
	stateClosed
	stateChecking // off the idle stack while the sweeper reads what a TLS conn received
	stateSentinel // retired from use, kept open to see when the backend closes it
)

// Conn is one upstream connection checked out of a [Pool] for one request. The exported
// fields describe this checkout; they are written by Get and read by the caller only.
type Conn struct {
	ID      uint64
	Reused  bool          // it served a request before this one
	IdleAge time.Duration // idle age at checkout (0 when new)
	Served  int           // requests served before this one
	// Queued: the request waited in the pool's queue and was handed this connection (a
	// caller timing the exchange from before Get must read the clock again).
	Queued bool
	R      *bufio.Reader // over the counting connection; pooled with the Conn
	W      *bufio.Writer

	cc *countConn

	// Guarded by the pool mutex.
	state     connState
	created   time.Time     // when its dial started
	lastUsed  time.Time     // start of the current idle period (release time; dial start when new)
	aliveAt   time.Time     // last time a probe saw it alive in this idle period
	served    int           // requests completed
	limit     int           // Keep-Alive max: served >= limit retires it; 0 = none
	kaTimeout time.Duration // latest Keep-Alive timeout on this conn; 0 = none
	gen       uint64        // checkout generation, to spot reuse during a sweep probe
	idleAtGet time.Duration // idle age at the last checkout
	gotAt     time.Time     // when it was last checked out
	pre       bool          // preconnected and not yet used by a request
	proven    time.Duration // longest idle age at which it answered or was probed alive
}

// NetConn returns the counting connection, for SetDeadline and the like. Its deadlines must
// be set through it (or netio.ExtendRead/ExtendWrite on it), never on the socket underneath.
func (c *Conn) NetConn() net.Conn { return c.cc }

// Interrupt closes the socket of a checked-out connection from another goroutine, waking a
// read or write in progress on it with an error. The proxy uses it to stop an exchange whose
// request was canceled; the holder then releases the connection as failed.
func (c *Conn) Interrupt() {
	if c.cc.tls != nil {
		_ = c.cc.tls.Conn.Close() // the socket: no close_notify from this goroutine
		return
	}
	_ = c.cc.Close()
}

// FlushWithRead flushes W so that its bytes go out with the next read of the response, in the
// same poller call (netio.Conn.SendRead): the read then waits for the response's event
// without first trying a read that finds nothing, one system call fewer per exchange. Nothing
// may be written to W between this call and that read (the bytes stay in W's buffer until
// then), and a failed send surfaces from the read as a *netio.SendError, with BytesWritten
// counting what was sent. Over TLS, or on a socket that is not TCP, it is W.Flush.
func (c *Conn) FlushWithRead() error {
	c.cc.deferWrite = true
	err := c.W.Flush()
	c.cc.deferWrite = false
	return err
}

// BytesWritten returns the bytes accepted by Write since this checkout.
func (c *Conn) BytesWritten() int64 { return c.cc.w.Load() }

// BytesRead returns the bytes read from the socket since this checkout.
func (c *Conn) BytesRead() int64 { return c.cc.r.Load() }

// Socket returns the connection's socket for moving bytes past the buffered reader and
// writer (splice), or nil when it is not a plain TCP socket (TLS, or not TCP). Bytes moved so
// must be counted with AddRead and AddWritten: the retry rules judge a failure by them.
func (c *Conn) Socket() *netio.Conn {
	if c.cc.tls != nil {
		return nil
	}
	return c.cc.nio
}

// AddRead counts n bytes read from Socket() past the buffered reader.
func (c *Conn) AddRead(n int64) { c.cc.r.Add(n) }

// AddWritten counts n bytes written to Socket() past the buffered writer.
func (c *Conn) AddWritten(n int64) { c.cc.w.Add(n) }

// newConn wraps a dialed connection: the socket nc, or the TLS connection of s when s is not
// nil. start is when its dial started: its created time and its idle start. The backend's
// idle timer runs from its accept, during the dial, and a TLS handshake takes longer still:
// a clock read after the dial would under-count the idle age of a conn that waits for its
// first request (a preconnect) by the dial's duration.
func newConn(nc net.Conn, s *tlsSocket, start time.Time) *Conn {
	cc := &countConn{tls: s}
	if s != nil {
		cc.Conn, cc.nio = s.tc, s.nio
	} else {
		cc.Conn = netio.Wrap(nc)
		cc.nio, _ = cc.Conn.(*netio.Conn)
	}
	c := &Conn{
		ID:       lastID.Add(1),
		R:        bufio.NewReaderSize(cc, bufSize),
		W:        bufio.NewWriterSize(cc, bufSize),
		cc:       cc,
		created:  start,
		lastUsed: start,
	}
	return c
}

// check tells whether an idle connection may carry a request: "" when alive, else why not.
// It never consumes data. Only the checker's goroutine may touch c.R, so the sweeper calls
// probe, not check.
func (c *Conn) check() CloseReason {
	if c.R.Buffered() > 0 {
		return CloseUnsolicitedData
	}
	if c.cc.tls != nil {
		return c.cc.tls.check()
	}
	return c.probe()
}

// probeRead is probe's verdict on a TLS connection with bytes waiting: only reading them
// through TLS tells a session ticket from a close_notify or application data, and only the
// connection's owner may read (see tls.go). It is never recorded as a close reason.
const probeRead CloseReason = "probe_read"

// probe peeks without consuming or blocking (safe alongside another probe: the sweeper and
// a checkout may look at the same idle conn): nothing waiting means alive, bytes mean
// unsolicited data (probeRead over TLS), the peer's FIN or an error (ECONNRESET) means dead.
func (c *Conn) probe() CloseReason {
	if c.cc.nio == nil {
		return ""
	}
	r, err := c.cc.nio.PeekNow()
	switch {
	case err != nil || r == netio.PeekClosed:
		return CloseBackendClosedIdle
	case r == netio.PeekData && c.cc.tls != nil:
		return probeRead
	case r == netio.PeekData:
		return CloseUnsolicitedData
	}
	return ""
}

var _ netio.Extender = (*countConn)(nil)

// errWriteBeforeSend is a write through W after FlushWithRead and before the read that sends
// what it left pending: a misuse, refused rather than sent.
var errWriteBeforeSend = errors.New("connpool: a write came before the read that sends the flushed request (FlushWithRead)")

// countConn counts bytes moved through a connection since the last reset: plaintext bytes,
// above TLS when there is TLS.
type countConn struct {
	net.Conn             // the socket, or the *tls.Conn of tls
	nio      *netio.Conn // the socket when it is TCP: peeks, lazy deadlines; else nil
	tls      *tlsSocket  // the socket under the TLS connection; nil for plain connections
	r, w     atomic.Int64

	// FlushWithRead's state: deferWrite makes the next Write keep its bytes in pending (a
	// slice of the bufio.Writer's buffer) for the next Read to send (netio.Conn.SendRead).
	deferWrite bool
	pending    []byte
}

// Close closes the connection; over TLS it sends close_notify first when the socket takes
// it at once. Only the connection's owner may call it (see Conn.Interrupt).
func (c *countConn) Close() error {
	if c.tls != nil {
		return c.tls.close()
	}
	return c.Conn.Close()
}

// CloseWrite half-closes the connection when the one underneath can (a tunnel passing on
// its peer's end of stream).
func (c *countConn) CloseWrite() error { return netio.CloseWrite(c.Conn) }

func (c *countConn) Read(b []byte) (int, error) {
	if c.pending != nil {
		return c.sendRead(b)
	}
	n, err := c.Conn.Read(b)
	c.r.Add(int64(n))
	return n, err
}

// sendRead sends the pending request and reads its answer in one poller call. What was not
// sent stays pending (a deadline already past, say), for the next Read or Write.
func (c *countConn) sendRead(b []byte) (int, error) {
	p := c.pending
	sent, n, err := c.nio.SendRead(p, b)
	c.w.Add(int64(sent))
	c.r.Add(int64(n))
	if sent < len(p) {
		c.pending = p[sent:]
	} else {
		c.pending = nil
	}
	return n, err
}

func (c *countConn) Write(b []byte) (int, error) {
	if c.deferWrite && c.pending == nil && c.nio != nil && c.tls == nil {
		c.pending = b
		return len(b), nil
	}
	if c.pending != nil {
		// The pending request is a slice of W's buffer, which this write's bytes went
		// through: sending both would put garbage on the wire.
		return 0, errWriteBeforeSend
	}
	n, err := c.Conn.Write(b)
	c.w.Add(int64(n))
	return n, err
}

// ExtendRead and ExtendWrite pass lazy deadlines through to the socket (netio.Extender).
func (c *countConn) ExtendRead(t time.Time, late time.Duration) error {
	if c.nio == nil {
		return c.Conn.SetReadDeadline(t)
	}
	return c.nio.ExtendRead(t, late)
}

func (c *countConn) ExtendWrite(t time.Time, late time.Duration) error {
	if c.nio == nil {
		return c.Conn.SetWriteDeadline(t)
	}
	return c.nio.ExtendWrite(t, late)
}

func (c *countConn) reset() {
	c.r.Store(0)
	c.w.Store(0)
	c.pending = nil
}
