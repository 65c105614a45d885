package connpool

// Preconnect: connects moved off the request path. When the pool has had a request within two
// effective idle timeouts and its youngest idle conn, one a request used, is about to be
// retired (its idle age within lead of its limit) or has just been, the sweeper opens one
// replacement in the background and puts it on the idle stack (on top, unless conns were
// released during its dial: its idle age counts from the dial's start), so that the next
// request finds a fresh conn instead of waiting for a connect (requests take an unused
// preconnected conn first). Bounds: one preconnect in flight, at most one per half effective
// idle timeout, none while the traffic is not recent, none to replace a preconnected conn (so
// an idle pool stops after at most one), none at MaxConns or while requests wait, none when
// Options.Preconnect is false. A preconnected conn that is retired before any request used it
// is counted wasted.
//
// lead = 2*SweepInterval + the mean connect time: the sweeper looks every SweepInterval, and
// the replacement must be ready before the old conn's limit.

import (
	"context"
	"time"
)

type preconnector struct {
	inFlight bool
	last     time.Time     // when the latest preconnect started
	dialMean time.Duration // moving mean of connect times (on the request path or not)
}

// noteDial feeds one connect time into the mean (weight 1/8).
func (pc *preconnector) noteDial(d time.Duration) {
	if pc.dialMean == 0 {
		pc.dialMean = d
		return
	}
	pc.dialMean += (d - pc.dialMean) / 8
}

// raceSpan is how soon after checkout a reset must come to be taken for the backend's idle
// close crossing the request: a few connect times (a connect is one round trip), at least
// 2*ReuseFloor. A reset later than that met a request the backend had been handling (a
// mid-request reset) and says nothing about the idle timeout.
func (p *Pool) raceSpan() time.Duration {
	return max(2*p.opts.ReuseFloor, 4*p.pre.dialMean)
}

// preconnectDueLocked says whether the sweeper should open a replacement now. expired is
// whether this sweep retired an idle conn, not a preconnected one, by its idle limit.
func (p *Pool) preconnectDueLocked(now time.Time, expired bool) bool {
	pc := &p.pre
	switch {
	case !p.opts.Preconnect || !p.opts.Enabled || p.closed || p.eff == 0 || pc.inFlight,
		len(p.waiters) > 0, p.opts.MaxConns > 0 && p.total >= p.opts.MaxConns,
		now.Sub(p.lastGet) >= 2*p.eff, now.Sub(pc.last) < p.eff/2:
		return false
	case len(p.idle) == 0:
		return expired // the last idle conn just went
	}
	top := p.idle[len(p.idle)-1]
	eff, _ := p.effFor(top)
	return !top.pre && now.Sub(top.lastUsed) >= eff-2*p.opts.SweepInterval-pc.dialMean
}

// startPreconnectLocked takes a slot and dials in the background.
func (p *Pool) startPreconnectLocked(now time.Time) {
	p.pre.inFlight, p.pre.last = true, now
	p.total++
	p.stats.preconnects++
	p.wg.Add(1)
	go p.preconnect()
}

func (p *Pool) preconnect() {
	defer p.wg.Done()
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), p.opts.ConnectTimeout)
	defer cancel()
	go func() { // a pool closed meanwhile stops the dial
		select {
		case <-p.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	nc, err := p.opts.Dial(ctx, "tcp", p.addr)
	var s *tlsSocket
	if err == nil && p.tls != nil {
		s, err = p.handshake(ctx, nc)
	}
	now := time.Now()
	if err == nil && p.negotiated(s) == alpnH2 {
		p.handOver(s) // frees the slot
		p.mu.Lock()
		p.pre.inFlight = false
		p.mu.Unlock()
		return
	}
	p.mu.Lock()
	p.pre.inFlight = false
	if err != nil || p.closed {
		p.stats.preconnectErrors++
		p.freeSlotLocked()
		p.mu.Unlock()
		switch {
		case s != nil:
			_ = s.close()
		case nc != nil:
			_ = nc.Close()
		}
		return
	}
	c := p.addDialedLocked(nc, s, start, now.Sub(start))
	c.pre = true
	p.giveLocked(c)
	p.mu.Unlock()
}
