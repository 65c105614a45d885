package connpool

// The sweeper: one goroutine per pool, running only while the pool has idle conns. Every
// SweepInterval it retires idle conns past a limit, then probes the rest with the same
// non-consuming peek as the checkout check, outside the mutex. A probe result is applied
// only if the conn is still idle in the same idle period (state and gen unchanged): a Get
// may have taken it meanwhile, and then the Get's own check rules. A TLS conn with bytes
// waiting cannot be judged by a peek: the sweeper takes it off the idle stack, runs the
// checkout check on it (which reads), and puts it back or retires it (see tls.go).

import (
	"slices"
	"time"
)

func (p *Pool) sweep() {
	defer p.wg.Done()
	t := time.NewTicker(p.opts.SweepInterval)
	defer t.Stop()
	var probe []*Conn
	var gens []uint64
	var verdicts []CloseReason
	for {
		select {
		case <-p.stop:
			return
		case <-t.C:
		}
		var ok bool
		probe, gens, ok = p.sweepRetire(time.Now(), probe[:0], gens[:0])
		if !ok {
			return
		}
		verdicts = verdicts[:0]
		start := time.Now()
		for _, c := range probe {
			verdicts = append(verdicts, c.probe())
		}
		p.sweepApply(start, time.Now(), probe, gens, verdicts)
		clear(probe) // drop references to conns until the next pass
	}
}

// sweepRetire closes expired idle conns and lists the others for probing. ok is false when
// the sweeper should exit (pool closed or no idle conn left).
func (p *Pool) sweepRetire(now time.Time, probe []*Conn, gens []uint64) (_ []*Conn, _ []uint64, ok bool) {
	p.mu.Lock()
	if p.closed || len(p.idle) == 0 && p.sentinel == nil {
		p.sweeping = false
		p.mu.Unlock()
		return probe, gens, false
	}
	p.maintainLocked(now)
	var dead []*Conn
	expired := false
	keep := p.idle[:0]
	for _, c := range p.idle {
		if why := p.expiredLocked(c, now); why != "" {
			expired = expired || !c.pre && (why == CloseLearnedTimeout || why == CloseIdleTimeout)
			if why == CloseLearnedTimeout && p.keepSentinelLocked(c) {
				continue
			}
			p.retireLocked(c, why, now, false)
			dead = append(dead, c)
			continue
		}
		keep = append(keep, c)
		probe = append(probe, c)
		gens = append(gens, c.gen)
	}
	clear(p.idle[len(keep):])
	p.idle = keep
	if s := p.sentinel; s != nil {
		probe = append(probe, s)
		gens = append(gens, s.gen)
	}
	if p.preconnectDueLocked(now, expired) {
		p.startPreconnectLocked(now)
	}
	p.mu.Unlock()
	closeAll(dead)
	return probe, gens, true
}

// sweepApply acts on probe results for conns still idle in the same idle period: a conn
// probed alive was alive at now (the probes started then); one found closed was closed by
// end (they ended then), the time its close is recorded at.
func (p *Pool) sweepApply(now, end time.Time, probe []*Conn, gens []uint64, verdicts []CloseReason) {
	var dead, read []*Conn
	p.mu.Lock()
	for i, c := range probe {
		if c.state == stateSentinel {
			if p.sentinelLocked(c, now, end, verdicts[i]) {
				dead = append(dead, c)
			}
			continue
		}
		if c.state != stateIdle || c.gen != gens[i] {
			continue
		}
		switch verdicts[i] {
		case "":
			c.aliveAt = now
			p.noteAliveLocked(c, now.Sub(c.lastUsed), aliveProbed, now)
			continue
		case probeRead:
			p.removeIdleLocked(c)
			c.state = stateChecking
			read = append(read, c)
			continue
		}
		p.removeIdleLocked(c)
		p.stats.staleCaught++
		p.observeLocked(c, end)
		p.retireLocked(c, verdicts[i], end, false)
		dead = append(dead, c)
	}
	p.mu.Unlock()
	closeAll(dead)
	for _, c := range read {
		p.recheck(c)
	}
}

// recheck runs the checkout check on a TLS conn the sweeper took off the idle stack, then
// puts it back as it was (or hands it to a waiter), or retires it as found dead.
func (p *Pool) recheck(c *Conn) {
	why := c.check()
	now := time.Now()
	var evicted *Conn
	p.mu.Lock()
	switch {
	case why != "":
		p.stats.staleCaught++
		p.observeLocked(c, now)
		p.retireLocked(c, why, now, false)
	case p.closed:
		why = p.closeWhy
		p.retireLocked(c, why, now, false)
	case len(p.waiters) > 0:
		c.aliveAt = now
		p.noteAliveLocked(c, now.Sub(c.lastUsed), aliveProbed, now)
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		c.state = stateInUse
		w.ch <- grant{c: c}
	default:
		c.aliveAt = now
		p.noteAliveLocked(c, now.Sub(c.lastUsed), aliveProbed, now)
		c.state = stateIdle
		evicted = p.restoreIdleLocked(c, now)
	}
	p.mu.Unlock()
	if why != "" {
		_ = c.cc.Close()
	}
	if evicted != nil {
		_ = evicted.cc.Close()
	}
}

// restoreIdleLocked puts c back on the idle stack in the place its release time gives it,
// keeping the MaxIdle bound (conns released meanwhile did not count it): it returns the
// conn retired to keep it, for the caller to close after unlocking.
func (p *Pool) restoreIdleLocked(c *Conn, now time.Time) (evicted *Conn) {
	p.insertIdleLocked(c)
	if len(p.idle) > p.opts.MaxIdle {
		evicted = p.dropOldestLocked()
		p.retireLocked(evicted, ClosePoolFull, now, false)
	}
	return evicted
}

func (p *Pool) removeIdleLocked(c *Conn) {
	for i, o := range p.idle {
		if o == c {
			p.idle = slices.Delete(p.idle, i, i+1)
			return
		}
	}
}

// sweeperDueLocked reports whether the caller must start the sweeper (go p.sweep(), which it
// may do after unlocking): none runs while idle conns exist. The WaitGroup is counted here,
// under the lock, so that Close waits for a sweeper started after it was unlocked.
func (p *Pool) sweeperDueLocked() bool {
	if p.sweeping {
		return false
	}
	p.sweeping = true
	p.wg.Add(1)
	return true
}
