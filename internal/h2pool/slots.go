package h2pool

// Connection slots under Options.MaxConns: draining connections do not hold one.
//
// A connection that takes no new streams but still carries some (retiring at MaxRequests or
// MaxLifetime, or marked dead by the library after a GOAWAY) is draining: it is kept open
// only until its streams end. Such a stream may be a gRPC server-stream or a slow download
// lasting minutes or hours. Were the draining connection counted against MaxConns, a pool at
// its limit would make every new request wait for that stream to end (or time out) for a
// slot on a connection that will never take it: a healthy backend would look down.
//
// So MaxConns bounds the connections that take streams (in service, spares, and dials in
// progress), and draining ones are kept beyond it, up to MaxDraining. That second bound
// is for safety against a backend that makes each connection reach max_requests (or
// GOAWAY) quickly while clients hold long streams on each: without it every connection
// would retire with its long streams on it and the pool would dial without end. Past
// MaxDraining draining connections count again, and new requests wait as before (the
// total stays at most MaxConns+MaxDraining). Replacement dials (retire.go) obey the same
// rule; a stream is still given only to a connection that takes streams, so no connection
// carries more than MaxRequests.

import (
	"context"
	"fmt"

	"sluice/internal/reason"
)

// drainingLocked reports whether c takes no new streams and is kept only for the streams
// it carries.
func drainingLocked(c *conn) bool {
	return c.retiring != "" || c.dead
}

// slotsLocked counts the open connections that take streams and those draining; dials in
// progress are not counted.
func (p *Pool) slotsLocked() (taking, draining int) {
	for _, c := range p.conns {
		switch {
		case c.gone:
		case drainingLocked(c):
			draining++
		default:
			taking++
		}
	}
	return taking, draining
}

// fullLocked reports whether the pool may not open another connection: MaxConns connections
// take streams (or are being dialed), or, counting the draining ones, the pool holds
// MaxConns+MaxDraining.
func (p *Pool) fullLocked() bool {
	if p.opts.MaxConns <= 0 {
		return false
	}
	taking, draining := p.slotsLocked()
	taking += p.dialing
	return taking >= p.opts.MaxConns || taking+draining >= p.opts.MaxConns+p.opts.MaxDraining
}

// queueTimeout is the error of a request that waited for a slot until ctx ended.
func (p *Pool) queueTimeout(ctx context.Context) error {
	p.mu.Lock()
	_, draining := p.slotsLocked()
	p.mu.Unlock()
	return reason.New(503, reason.PoolQueueTimeout, p.addr, fmt.Errorf("all %d HTTP/2 connections are full (SETTINGS_MAX_CONCURRENT_STREAMS; %d more draining, at most %d kept beyond max_conns): %w",
		p.opts.MaxConns, draining, p.opts.MaxDraining, context.Cause(ctx)))
}

// wakeLocked wakes the requests waiting for a stream slot or a connection, to look again.
func (p *Pool) wakeLocked() {
	close(p.wake)
	p.wake = make(chan struct{})
}
