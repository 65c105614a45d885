package connpool

// The sweeper: one goroutine per pool, running only while the pool has idle conns. Every
// SweepInterval it retires idle conns past a limit, then probes the rest with the same
// non-consuming peek as the checkout check, outside the mutex. A probe result is applied
// only if the conn is still idle in the same idle period (state and gen unchanged): a Get
// may have taken it meanwhile, and then the Get's own check rules.

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
		p.sweepApply(start, probe, gens, verdicts)
		clear(probe) // drop references to conns until the next pass
	}
}

// sweepRetire closes expired idle conns and lists the others for probing. ok is false when
// the sweeper should exit (pool closed or no idle conn left).
func (p *Pool) sweepRetire(now time.Time, probe []*Conn, gens []uint64) (_ []*Conn, _ []uint64, ok bool) {
	p.mu.Lock()
	if p.closed || len(p.idle) == 0 {
		p.sweeping = false
		p.mu.Unlock()
		return probe, gens, false
	}
	p.maintainLocked(now)
	var dead []*Conn
	keep := p.idle[:0]
	for _, c := range p.idle {
		if why := p.expiredLocked(c, now); why != "" {
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
	p.mu.Unlock()
	closeAll(dead)
	return probe, gens, true
}

// sweepApply acts on probe results for conns still idle in the same idle period.
func (p *Pool) sweepApply(now time.Time, probe []*Conn, gens []uint64, verdicts []CloseReason) {
	var dead []*Conn
	p.mu.Lock()
	for i, c := range probe {
		if c.state != stateIdle || c.gen != gens[i] {
			continue
		}
		if verdicts[i] == "" {
			c.aliveAt = now
			continue
		}
		p.removeIdleLocked(c)
		p.stats.staleCaught++
		p.observeLocked(c, now)
		p.retireLocked(c, verdicts[i], now, false)
		dead = append(dead, c)
	}
	p.mu.Unlock()
	closeAll(dead)
}

func (p *Pool) removeIdleLocked(c *Conn) {
	for i, o := range p.idle {
		if o == c {
			p.idle = slices.Delete(p.idle, i, i+1)
			return
		}
	}
}
