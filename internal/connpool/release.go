package connpool

import (
	"errors"
	"net"
	"time"
)

// Outcome is what happened on a connection during one exchange, reported to
// [Pool.Release].
type Outcome struct {
	// Reusable: the exchange completed cleanly and framing allows reuse.
	Reusable bool
	// KeepAliveTimeout is the "Keep-Alive: timeout" of this response, 0 if none.
	KeepAliveTimeout time.Duration
	// KeepAliveMax is the "Keep-Alive: max" of this response (requests still allowed on
	// this connection); -1 or 0 if none (servers send Connection: close instead of max=0).
	KeepAliveMax int
	// Err is non-nil when the exchange failed on this connection. A failure on a reused
	// connection before any response byte (BytesRead()==0) is taken as the backend's idle
	// close racing the request, unless Reason is CloseRequestError (the client side
	// failed) or Err is a timeout.
	Err error
	// Reason says why the connection is not reusable when !Reusable (CloseBackendClose,
	// CloseProtocolError, CloseRequestError, ...). Empty => CloseProtocolError, or
	// CloseRequestError when Err is set.
	Reason CloseReason
	// End is when the exchange ended (the pool's idle clock starts there); zero means now.
	End time.Time
}

// Release returns c after one exchange. The connection is pooled when r allows it and no
// limit or learned rule retires it; otherwise it is closed with the reason recorded.
func (p *Pool) Release(c *Conn, r Outcome) {
	if c == nil {
		return
	}
	now := r.End
	if now.IsZero() {
		now = time.Now()
	}
	p.mu.Lock()
	if c.state != stateInUse {
		p.mu.Unlock()
		return // double release: ignore
	}
	if c.Reused && c.cc.r.Load() > 0 {
		p.noteAliveLocked(c, c.idleAtGet, aliveAnswered, now) // provisional.go
	}
	c.served++
	c.pre = false
	c.lastUsed, c.aliveAt = now, now
	p.maintainLocked(now)
	why := p.verdictLocked(c, r, now)
	if why != "" {
		p.retireLocked(c, why, now, false)
		p.mu.Unlock()
		_ = c.cc.Close()
		return
	}
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		p.mu.Unlock()
		// Sent after unlocking: waking the waiter's goroutine may wake a thread (a futex
		// call), not to be paid with the lock held. Popped under it, the waiter is this
		// conn's alone; a waiter giving up meanwhile finds itself gone and takes the grant
		// (wait).
		w.ch <- grant{c: c}
		return
	}
	if len(p.idle) >= p.opts.MaxIdle && p.youngUnprovenLocked(c, 0) {
		// Keep the older conns rather than this one: a POST may take one once it has
		// outlived a close right after its response (afterresponse.go), and a stack
		// refilled with young conns would never let one get that old.
		p.retireLocked(c, ClosePoolFull, now, false)
		p.mu.Unlock()
		_ = c.cc.Close()
		return
	}
	c.state = stateIdle
	p.pushIdleLocked(c)
	var evicted *Conn
	if len(p.idle) > p.opts.MaxIdle {
		evicted = p.dropOldestLocked()
		p.retireLocked(evicted, ClosePoolFull, now, false)
	}
	start := p.sweeperDueLocked()
	p.mu.Unlock()
	if start {
		go p.sweep()
	}
	if evicted != nil {
		_ = evicted.cc.Close()
	}
}

// verdictLocked decides whether c may be pooled after this exchange: "" or the reason to
// close it. It also feeds learning.
func (p *Pool) verdictLocked(c *Conn, r Outcome, now time.Time) CloseReason {
	if r.KeepAliveTimeout > 0 {
		c.kaTimeout = r.KeepAliveTimeout
		p.learnHeaderLocked(r.KeepAliveTimeout, now)
	}
	if r.KeepAliveMax > 0 {
		c.limit = c.served + r.KeepAliveMax
	}
	switch {
	case r.Err != nil:
		if c.Reused && c.cc.r.Load() == 0 && r.Reason != CloseRequestError && !isTimeout(r.Err) {
			p.stats.resetOnReuse++
			if now.Sub(c.gotAt) > p.raceSpan() {
				// Reset in the middle of the exchange (the backend had the request for a
				// while): no evidence about the idle timeout, and not the reuse's fault.
				return CloseResetOnReuse
			}
			p.resetSeenLocked(c.idleAtGet)
			if c.served > 1 && c.idleAtGet < p.opts.ReuseFloor { // with learn off too
				p.closedAfterResponseLocked(c.idleAtGet, "reset on reuse", now) // afterresponse.go
			}
			p.failureLocked(c.idleAtGet, c.gotAt, now)
			return CloseResetOnReuse
		}
		if r.Reason != "" {
			return r.Reason
		}
		return CloseRequestError
	case p.closed:
		return p.closeWhy
	case !p.opts.Enabled:
		return CloseKeepAliveDisabled
	case !r.Reusable:
		if r.Reason != "" {
			return r.Reason
		}
		return CloseProtocolError
	case c.R.Buffered() > 0:
		return CloseUnsolicitedData
	}
	if why := p.wornLocked(c, now); why != "" {
		return why
	}
	if eff, learned := p.effFor(c); eff == 0 {
		return p.idleReason(eff, learned)
	}
	return ""
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// Close stops the pool: idle conns are closed now, in-use ones on Release; waiters get
// 503 gateway_shutting_down; the sweeper exits. why is recorded as the close reason
// ([CloseShutdown] or [CloseConfigChange]). Close waits for the sweeper to exit.
func (p *Pool) Close(why CloseReason) {
	if why == "" {
		why = CloseShutdown
	}
	now := time.Now()
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed, p.closeWhy = true, why
	for _, w := range p.waiters {
		w.ch <- grant{err: p.errShutdown()}
	}
	p.waiters = nil
	idle := p.idle
	p.idle, p.idleArr = nil, nil
	for _, c := range idle {
		p.retireLocked(c, why, now, false)
	}
	if s := p.sentinel; s != nil {
		p.sentinel = nil
		p.retireLocked(s, why, now, false)
		idle = append(idle, s)
	}
	close(p.stop)
	p.mu.Unlock()
	closeAll(idle)
	p.wg.Wait()
}
