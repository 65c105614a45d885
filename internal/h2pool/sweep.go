package h2pool

import (
	"context"
	"time"
)

// CloseReason says why a connection was closed (life records, metrics).
type CloseReason string

// Close reasons.
const (
	CloseGoAway        CloseReason = "goaway"          // the backend sent GOAWAY; closed when its streams ended
	CloseBackendClosed CloseReason = "backend_closed"  // the backend closed the connection without GOAWAY
	ClosePingTimeout   CloseReason = "ping_timeout"    // a PING (before a stream, or read-idle) went unanswered
	CloseIdleTimeout   CloseReason = "idle_timeout"    // no stream for keepalive.idle_timeout
	CloseLearnedIdle   CloseReason = "learned_timeout" // no stream for the learned backend idle timeout's safe part
	CloseConnError     CloseReason = "conn_error"      // the library found the connection unusable
	CloseWriteStuck    CloseReason = "write_stuck"     // a write on it blocked past a request's end (the backend stopped reading)
	CloseShutdown      CloseReason = "shutdown"        // Pool.Close at shutdown
	CloseConfigChange  CloseReason = "config_change"   // Pool.Close on reconfiguration
	CloseMaxRequests   CloseReason = "max_requests"    // it was given Options.MaxRequests streams, and they ended
	CloseMaxLifetime   CloseReason = "max_lifetime"    // it reached Options.MaxLifetime, and its streams ended
)

// sweep looks at every connection each SweepInterval until Close: it records the ones that
// ended (GOAWAY, backend close), closes the ones whose streams ended after a GOAWAY and the
// idle ones, and PINGs the ones that read nothing for ReadIdleTimeout.
func (p *Pool) sweep() {
	t := time.NewTicker(p.opts.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-t.C:
			p.sweepOnce(now)
		}
	}
}

func (p *Pool) sweepOnce(now time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	eff := p.effectiveIdleLocked()
	kept := p.conns[:0]
	for _, c := range p.conns {
		if c.gone {
			continue
		}
		st := c.cc.State()
		idle := c.active.Load() == 0
		idleSince := time.Unix(0, c.idleSince.Load())
		switch {
		case st.Closed:
			p.learnLocked(c, idle, idleSince)
			p.retireLocked(c, p.endReason(c), now)
		case (st.Closing || c.dead) && idle:
			p.retireLocked(c, p.endReason(c), now)
		case p.sweepRetireLocked(c, now):
		case idle && eff > 0 && now.Sub(idleSince) >= eff:
			why := CloseIdleTimeout
			if eff < p.opts.IdleTimeout || p.opts.IdleTimeout == 0 {
				why = CloseLearnedIdle
			}
			p.retireLocked(c, why, now)
		default:
			if ri := p.opts.ReadIdleTimeout; ri > 0 && p.readIdleLocked(c, now) >= ri && c.pinging.CompareAndSwap(false, true) {
				// New streams wait for its answer (get's awaitCheck), as during the check
				// before a stream: c read nothing for ReadIdleTimeout and may be stale, and
				// a stream put on it would be cut by its retirement, as processed. A check
				// out already holds them itself (and owns c.checking).
				var checking chan struct{}
				if c.checking == nil {
					checking = make(chan struct{})
					c.checking = checking
				}
				go func() {
					defer c.pinging.Store(false)
					p.ping(context.Background(), c, false)
					if checking != nil {
						p.mu.Lock()
						close(checking)
						c.checking = nil
						p.mu.Unlock()
					}
				}()
			}
			kept = append(kept, c)
			continue
		}
	}
	clear(p.conns[len(kept):])
	p.conns = kept
}

// readIdleLocked is how long c has read nothing, as the sweeps saw it: a read since the
// last sweep counts as made now (so a PING may come up to one SweepInterval later than
// ReadIdleTimeout after the last read; the sweeps' own spacing already allowed as much).
func (p *Pool) readIdleLocked(c *conn, now time.Time) time.Duration {
	if n := c.cc.rd.reads.Load(); n != c.readsSeen {
		c.readsSeen, c.readAt = n, now
	}
	return now.Sub(c.readAt)
}

// endReason is why c ended on the backend's side.
func (p *Pool) endReason(c *conn) CloseReason {
	f := c.cc.lifeFacts()
	switch {
	case f.writeStuck: // before the others: a stopped write closes the connection (eofAt), not the backend
		return CloseWriteStuck
	case f.goAway:
		return CloseGoAway
	case f.eofAt != 0:
		return CloseBackendClosed
	}
	return CloseConnError
}

// learnLocked learns the backend's idle timeout from c, which ended: when it carried no
// stream then, it was closed after being idle so long (a GOAWAY or a FIN on an idle
// connection is the backend's idle timeout at work).
func (p *Pool) learnLocked(c *conn, idle bool, idleSince time.Time) {
	f := c.cc.lifeFacts()
	end := f.eofAt
	if !p.opts.Learn || end == 0 || f.writeStuck || !idle || c.streams.Load() == 0 { // a stuck connection was closed by the client
		return
	}
	age := time.Unix(0, end).Sub(idleSince)
	if age <= 0 {
		return
	}
	if p.learned == 0 || age < p.learned {
		p.learned = age
		p.log.Info("learned backend HTTP/2 idle timeout", "idle_timeout", age.Round(time.Millisecond), "conn", c.id)
	}
}

// effectiveIdleLocked is the idle time after which a connection is closed (0: never).
func (p *Pool) effectiveIdleLocked() time.Duration {
	eff := p.opts.IdleTimeout
	if p.learned > 0 {
		f := p.opts.SafetyFraction
		if f <= 0 || f > 1 {
			f = 1
		}
		if l := time.Duration(float64(p.learned) * f); eff == 0 || l < eff {
			eff = l
		}
	}
	return eff
}

// retireLocked closes c (at once; its streams, if any, fail) and records its life.
func (p *Pool) retireLocked(c *conn, why CloseReason, now time.Time) {
	if c.gone {
		return
	}
	c.gone = true
	c.cc.Close()
	p.closes[why]++
	f := c.cc.lifeFacts()
	rec := LifeRecord{ID: c.id, Created: c.created, Closed: now, Streams: c.streams.Load(), Reason: why,
		Refused: f.refused, Resets: f.resets}
	if f.goAway {
		rec.GoAwayCode = f.goAwayCode.String()
		rec.GoAwayLastStreamID = f.goAwayLast
	}
	p.history[p.histN%historyLen] = rec
	p.histN++
	p.wakeLocked()
}
