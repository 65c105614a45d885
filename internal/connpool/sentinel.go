package connpool

// Sentinels (see confidence.go): once the pool retires conns before the backend closes them,
// it sees no more idle closes, and its confidence in the learned value could never be earned
// or refreshed. So while it keeps fewer than closeKeep brackets, the sweeper keeps one conn
// that reached the learned limit open instead of closing it: off the idle stack, never handed
// out, probed each sweep until the backend closes it (a bracket, and an observation for the
// learner) or it outlives three times the learned value (closed by Sluice, learned_timeout). It
// holds its slot (none is kept at MaxConns with requests waiting), is a plain TCP conn that
// served a request (a TLS or a preconnected, never used conn is not), and is closed with the
// pool. At most one sentinel per pool.

import "time"

// sentinelSpan: a sentinel still open at this many times the learned value is closed by the
// pool. Node (v20.19+) closes a second after the timeout it advertises, so a backend may well
// close at twice what it says: three times lets that close be seen even with late sweeps.
const sentinelSpan = 3

// keepSentinelLocked makes c, just expired by the learned limit, the pool's sentinel when one
// is wanted. c is off the idle stack either way; false: the caller retires it.
func (p *Pool) keepSentinelLocked(c *Conn) bool {
	if !p.opts.Learn || p.sentinel != nil || len(p.conf.brackets) >= closeKeep ||
		c.cc.tls != nil || c.pre || c.served == 0 || len(p.waiters) > 0 {
		return false
	}
	c.state = stateSentinel
	p.sentinel = c
	return true
}

// sentinelLocked applies a probe verdict to the sentinel c; true: it was retired (the caller
// closes it).
func (p *Pool) sentinelLocked(c *Conn, now, end time.Time, verdict CloseReason) bool {
	if c != p.sentinel {
		return false
	}
	switch verdict {
	case "":
		c.aliveAt = now
		p.noteAliveLocked(c, now.Sub(c.lastUsed), aliveProbed, now)
		if now.Sub(c.lastUsed) < sentinelSpan*max(p.learn.value, p.eff)+2*p.opts.SweepInterval {
			return false
		}
		verdict = CloseLearnedTimeout
	case CloseBackendClosedIdle:
		p.stats.sentinelCloses++
		p.observeLocked(c, end)
		now = end
	case probeRead:
		verdict = CloseUnsolicitedData
	}
	p.sentinel = nil
	p.retireLocked(c, verdict, now, false)
	return true
}
