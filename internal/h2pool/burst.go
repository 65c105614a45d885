package h2pool

// Parallel dials under a burst.
//
// A request that finds no connection able to take its stream while one is being dialed
// waits for that dial rather than dialing its own, as Go's transport does: a burst on a
// cold pool then shares one connection instead of dialing one per request. But a new
// connection takes only so many streams: at most MaxRequests in its life, and at most the
// backend's SETTINGS_MAX_CONCURRENT_STREAMS at once. A burst larger than that, waiting on
// one dial, gets a connection that fills up, then the next dial, one at a time: with a
// 250 ms handshake, 40 requests at max_requests 10 took 1.04 s behind four serial dials
// (0.29 s dialing in parallel: TestBurstDialsInParallel).
//
// So the requests waiting for dials are counted (Pool.demand, from when a request first
// finds a dial in progress until it has a stream reserved or gives up), and a request waits
// only while the dials in progress, and the connections dialed but still waiting for their
// SETTINGS, can take them all: each is expected to take perConnLocked streams. A request
// the coming connections cannot take dials its own, within MaxConns (fullLocked), so that
// a burst gets the connections it needs in about one dial's time. When nothing bounds what
// a connection takes (no MaxRequests, no SETTINGS seen yet), a dial is taken to cover any
// number of requests: the cold-burst rule above is unchanged.

// perConnLocked is how many streams a new connection is expected to take: MaxRequests,
// or fewer when the backend's latest SETTINGS allowed fewer at once; 0 when unbounded or
// not known yet.
func (p *Pool) perConnLocked() int64 {
	per := p.opts.MaxRequests
	for i := len(p.conns) - 1; i >= 0; i-- {
		if m := p.conns[i].streamLimit(); m > 0 {
			if per <= 0 || m < per {
				per = m
			}
			break
		}
	}
	return max(per, 0)
}

// streamLimit is c's SETTINGS_MAX_CONCURRENT_STREAMS as the backend's latest SETTINGS set
// it (at least 1: a connection that takes none now is not "unbounded"), or the client's
// default when its first SETTINGS named none; 0 before its first SETTINGS. The value the
// connection settled with is only the first: a backend may lower (or raise) it later, and
// the client admits streams by the latest (clientConn.limit).
func (c *conn) streamLimit() int64 {
	if m := c.cc.limit.Load(); m >= 0 {
		return max(m, 1)
	}
	return 0
}

// coveredLocked reports whether the connections being dialed, and those dialed but
// waiting for their SETTINGS, can take every request waiting for them (p.demand).
func (p *Pool) coveredLocked() bool {
	per := p.perConnLocked()
	if per == 0 {
		return true
	}
	coming := int64(p.dialing) * per
	for _, c := range p.conns {
		if !c.gone && !c.dead && c.retiring == "" && !c.noWait && !c.settled.Load() {
			coming += max(per-c.given, 0)
		}
	}
	return p.demand <= coming
}
