package testutil

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// SlowHandshakeListener hands out connections whose first write (a TLS ServerHello, an
// HTTP/2 server's SETTINGS) is held for Delay, each on its own: a backend whose handshake
// takes Delay per connection (a TLS handshake far away, a loaded accept queue), however
// many are dialed at once. Wrap a server's listener with it (httptest's Listener field, or
// the listener a test backend serves on).
type SlowHandshakeListener struct {
	net.Listener
	Delay time.Duration
	// Held, if set, records how many handshakes were held at once.
	Held *Overlap
	// Hold, if set, is called before each connection's first write, after Delay, on the
	// goroutine writing it: a test holds a handshake until something it waits for has
	// happened, instead of guessing a delay long enough for it.
	Hold func()
}

// Accept accepts the next connection and wraps it to hold its first write.
func (l SlowHandshakeListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &slowHandshakeConn{Conn: c, delay: l.Delay, held: l.Held, hold: l.Hold}, nil
}

type slowHandshakeConn struct {
	net.Conn
	delay time.Duration
	held  *Overlap
	hold  func()
	once  sync.Once
}

func (c *slowHandshakeConn) Write(p []byte) (int, error) {
	c.once.Do(func() {
		if c.held != nil {
			defer c.held.Enter()()
		}
		time.Sleep(c.delay)
		if c.hold != nil {
			c.hold()
		}
	})
	return c.Conn.Write(p)
}

// Overlap counts the things in progress and the most there were at once. The zero value is
// ready to use.
type Overlap struct {
	now, most atomic.Int64
}

// Enter records one more in progress and returns the function that ends it.
func (o *Overlap) Enter() func() {
	n := o.now.Add(1)
	for m := o.most.Load(); n > m && !o.most.CompareAndSwap(m, n); m = o.most.Load() {
	}
	return func() { o.now.Add(-1) }
}

// Most returns the most in progress at once so far.
func (o *Overlap) Most() int64 { return o.most.Load() }
