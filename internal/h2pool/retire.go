package h2pool

// Retiring connections at keepalive.max_requests and max_lifetime, with a replacement
// dialed ahead.
//
// A connection that has been given Options.MaxRequests streams, or has lived
// Options.MaxLifetime, stops taking new streams, as after a GOAWAY received: its streams in
// flight run to their end, and the pool closes it when the last one ended (Done, or the
// sweeper), recording max_requests or max_lifetime as its close reason. The count is of
// streams handed out under Pool.mu (pickLocked), so concurrent requests never put more than
// MaxRequests streams on one connection.
//
// So that no request waits for a dial when its connection retires, the pool dials one
// replacement ahead ("spare"): when a connection has at most max(1, MaxRequests/4, its
// streams in flight) streams left, or is within lifetimeLead of MaxLifetime while it carries traffic. A spare is
// dialed in the background, waits for the backend's SETTINGS, and then sits in the pool
// unused (pickLocked passes over it) until no other connection can take a stream; the
// connection it stands in for thus carries exactly its MaxRequests. One spare at a time,
// and never above Options.MaxConns (a spare counts as a connection that takes streams;
// the retiring one it replaces does not, up to MaxDraining: slots.go). A request that finds no usable connection while the
// spare is being dialed waits for it instead of dialing its own (the dial-in-progress rule
// of get). A spare nobody needed is closed by the idle timeout like any idle connection.

import (
	"context"
	"errors"
	"time"
)

// lifetimeLead is how long before a connection's MaxLifetime its replacement is dialed:
// a tenth of the lifetime, at least two sweeps (the sweeper notices the age) and at most
// 1s (a dial takes milliseconds), never more than half the lifetime.
func (p *Pool) lifetimeLead() time.Duration {
	l := p.opts.MaxLifetime / 10
	l = max(l, 2*p.opts.SweepInterval)
	l = min(l, time.Second, p.opts.MaxLifetime/2)
	return l
}

// requestLead is how many streams before MaxRequests c's replacement is dialed: a quarter
// of MaxRequests, or as many as c carries now if more (about that many more arrive while
// they run, which is how long a dial may take).
func (p *Pool) requestLead(c *conn) int64 {
	return max(1, p.opts.MaxRequests/4, c.active.Load())
}

// expiredLocked reports whether c reached MaxLifetime at now, marking it retiring (and
// closing it at once when it carries no stream).
func (p *Pool) expiredLocked(c *conn, now time.Time) bool {
	if p.opts.MaxLifetime <= 0 || now.Sub(c.created) < p.opts.MaxLifetime {
		return false
	}
	p.retiringLocked(c, CloseMaxLifetime, now)
	return true
}

// givenLocked counts a stream reserved on c: at MaxRequests c takes no more, and near it
// a replacement is dialed ahead.
func (p *Pool) givenLocked(c *conn) {
	c.given++
	if n := p.opts.MaxRequests; n > 0 {
		if c.given >= n {
			p.retiringLocked(c, CloseMaxRequests, time.Time{})
		}
		if n-c.given <= p.requestLead(c) {
			p.replaceLocked(c)
		}
	}
}

// retiringLocked marks c as taking no new streams, to be closed for why when its streams
// end; closed at once (now) when it carries none. now may be zero when c has a stream
// reserved (pickLocked).
func (p *Pool) retiringLocked(c *conn, why CloseReason, now time.Time) {
	if c.retiring != "" {
		return
	}
	c.retiring = why
	p.wakeLocked() // draining now: it may free a slot under MaxConns (slots.go)
	p.log.Debug("HTTP/2 connection retiring: no new streams", "conn", c.id, "reason", string(why),
		"streams", c.given, "age", time.Since(c.created).Round(time.Millisecond))
	if now.IsZero() {
		return
	}
	if p.recentLocked(c, now) {
		p.replaceLocked(c)
	}
	if c.active.Load() == 0 {
		p.retireLocked(c, why, now)
	}
}

// recentLocked reports whether c carries traffic: streams now, or within two effective idle
// timeouts (the rule connpool's preconnect follows). A connection without traffic is not
// replaced ahead, so that an idle pool does not keep dialing spares for spares.
func (p *Pool) recentLocked(c *conn, now time.Time) bool {
	if c.spare || c.given == 0 {
		return false
	}
	if c.active.Load() > 0 {
		return true
	}
	eff := p.effectiveIdleLocked()
	return eff == 0 || now.Sub(time.Unix(0, c.idleSince.Load())) < 2*eff
}

// sweepRetireLocked is the sweeper's part: it retires c for MaxLifetime, or dials its
// replacement ahead when c nears it while carrying traffic. It reports whether c was
// closed.
func (p *Pool) sweepRetireLocked(c *conn, now time.Time) bool {
	if c.retiring != "" {
		if c.active.Load() == 0 {
			p.retireLocked(c, c.retiring, now)
			return true
		}
		return false
	}
	if p.opts.MaxLifetime <= 0 {
		return false
	}
	if p.expiredLocked(c, now) {
		return c.gone
	}
	if now.Sub(c.created) >= p.opts.MaxLifetime-p.lifetimeLead() && p.recentLocked(c, now) {
		p.replaceLocked(c)
	}
	return false
}

// replaceLocked dials a replacement for c in the background, unless one was dialed for it
// already, a spare is waiting or being dialed (several connections near their limit at
// once under a burst: one spare at a time all the same), the pool is full (slots.go), or
// it is closed.
func (p *Pool) replaceLocked(c *conn) {
	if c.replaced || p.closed {
		return
	}
	if p.fullLocked() {
		return
	}
	if p.sparing > 0 {
		c.replaced = true // the spare on its way stands in for c too
		return
	}
	for _, o := range p.conns {
		if o.spare && !o.gone && !o.dead {
			c.replaced = true // that spare stands in for c too
			return
		}
	}
	c.replaced = true
	p.dialing++
	p.sparing++
	go p.dialSpare(c.id)
}

// dialSpare dials the replacement of connection old and, once the backend's SETTINGS came,
// adds it to the pool as a spare.
func (p *Pool) dialSpare(old uint64) {
	timeout := p.opts.ConnectTimeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	c, err := p.dial(ctx)
	if err == nil {
		select { // ready when its SETTINGS (MAX_CONCURRENT_STREAMS) are known
		case <-c.cc.settled:
		case <-ctx.Done():
		case <-p.stop:
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.dialing--
	p.sparing--
	p.wakeLocked()
	if err != nil {
		if !errors.Is(err, ErrNegotiatedHTTP1) { // an auto pool's target chose HTTP/1.1
			p.counters.DialFailures++
		}
		p.log.Debug("HTTP/2 replacement dial failed", "for_conn", old, "err", err)
		return
	}
	p.counters.Dials++
	p.counters.Replacements++
	if p.closed {
		c.cc.Close()
		return
	}
	c.spare = true
	p.conns = append(p.conns, c)
	p.log.Debug("HTTP/2 replacement connection ready", "conn", c.id, "for_conn", old)
}
