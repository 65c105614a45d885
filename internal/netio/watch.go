package netio

// Watched waits.
//
// A goroutine parked on the poller for one socket learns nothing about another: a proxy
// blocked writing a request body to a backend that stopped reading cannot see that the
// backend has answered (RFC 9112 §9.5), nor while it waits for the client's next body bytes.
// A second goroutine could wait on the other socket and interrupt the first, but it would
// have to move the first one's deadlines from outside (racing the deadlines a Conn remembers,
// see ExtendRead) and be started and stopped per request. Instead a Conn can be watched:
// while a watch is set, a Read, Write or Splice that has to wait does so in steps, and
// between steps it runs the watch, which looks at the other socket (a non-blocking peek) and
// says whether to keep waiting. The steps start short and double (a backend that answers
// early usually does so at once; a long, legitimate wait costs a wake-up per max step), and
// the deadline armed on the Conn still bounds the whole wait. Calls that need not wait pay
// nothing but a nil check.

import (
	"errors"
	"os"
	"time"
)

// ErrWatchStopped is returned by a Read, Write or Splice whose watch said to stop waiting.
// A Write returns it with the count of bytes it wrote; a stopped Splice lost what its pipe
// held, as after any failure.
var ErrWatchStopped = errors.New("wait stopped by its watch")

// Watch makes every wait of a Read, Write or Splice on c (for bytes to read, or for room to
// write) end after a step, first long at first and doubling up to max, and then run f:
// true keeps waiting (up to the deadline armed on c), false stops the call with
// ErrWatchStopped. f runs on the waiting goroutine. A nil f removes the watch. Set and
// removed by the goroutine that reads and writes c.
func (c *Conn) Watch(f func() bool, first, max time.Duration) {
	c.watch, c.watchFirst, c.watchMax = f, first, max
}

// readWait runs the poller's Read with fn, in watched steps when a watch is set.
func (c *Conn) readWait(fn func(uintptr) bool) error {
	if c.watch == nil {
		return c.rc.Read(fn)
	}
	c.rtry.fn = fn
	if err := c.rc.Read(c.rtry.once); err != nil || c.rtry.ready {
		return err
	}
	return c.stepped(true, fn)
}

// writeWait is readWait for writes.
func (c *Conn) writeWait(fn func(uintptr) bool) error {
	if c.watch == nil {
		return c.rc.Write(fn)
	}
	c.wtry.fn = fn
	if err := c.rc.Write(c.wtry.once); err != nil || c.wtry.ready {
		return err
	}
	return c.stepped(false, fn)
}

// try runs a poller callback once without letting the poller wait, so that a watched call
// knows whether it has to wait before it arms a step. once is bound at Wrap.
type try struct {
	fn    func(uintptr) bool
	ready bool
	once  func(uintptr) bool
}

func (t *try) run(fd uintptr) bool {
	t.ready = t.fn(fd)
	return true
}

// stepped waits in steps for fn to be ready (see Watch). The poller's deadline is moved to
// each step's end and set back to the one armed on c afterwards. (Branches, not method
// values: a method value would be allocated on every wait.)
func (c *Conn) stepped(read bool, fn func(uintptr) bool) error {
	armed := c.wdl
	if read {
		armed = c.rdl
	}
	defer c.setPoller(read, armed)
	for step := c.watchFirst; ; step = min(2*step, c.watchMax) {
		end, last := time.Now().Add(step), false
		if !armed.IsZero() && !armed.After(end) {
			end, last = armed, true
		}
		c.setPoller(read, end)
		var err error
		if read {
			err = c.rc.Read(fn)
		} else {
			err = c.rc.Write(fn)
		}
		if err == nil || last || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		if !c.watch() {
			return ErrWatchStopped
		}
	}
}

// setPoller sets the socket's deadline for one direction without changing the one c
// remembers as armed.
func (c *Conn) setPoller(read bool, t time.Time) {
	if read {
		_ = c.Conn.SetReadDeadline(t)
	} else {
		_ = c.Conn.SetWriteDeadline(t)
	}
}
