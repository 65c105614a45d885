package connpool

// ALPN for upstreams with protocol auto (docs/http2.md, docs/design.md "Upstream protocol
// auto"). With Options.ALPN set, the pool is the one dialer of its target for both protocols:
// every TLS handshake it makes offers ["h2", "http/1.1"], and the target's answer decides
// whose the connection is.
//
//   - Dialed for a request here (dial, preconnect) and the target chose h2: the connection
//     is handed to the HTTP/2 pool (ALPN.Adopt), its slot here is freed, and the request
//     gets ErrNegotiatedH2: nothing of it was written, and it belongs to the HTTP/2 pool now
//     (where the handed-over connection waits for it). A preconnect's connection is handed
//     over the same way.
//   - Dialed for the HTTP/2 pool (DialH2) and the target chose HTTP/1.1: the connection
//     stays here as an unused idle one, marked preconnected, so that the next request (the
//     one the HTTP/2 pool turns away with its ErrNegotiatedHTTP1) takes it first. At
//     MaxConns it is closed instead.
//
// The connections stay apart: an HTTP/1.1 connection is never in the HTTP/2 pool, nor an h2
// one here (Kong/kong#10757). Health checks (TLSConfig) keep offering "http/1.1" alone: an
// HTTP/1.1 probe must not be answered in HTTP/2.

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"time"
)

// ErrNegotiatedH2 is the error of a Get whose new connection found that the target chose
// HTTP/2 (ALPN h2): nothing of the request was written, and the connection went to the
// target's HTTP/2 pool, where the request belongs.
var ErrNegotiatedH2 = errors.New("the target chose HTTP/2 in the TLS handshake (ALPN h2)")

// ALPN protocol IDs.
const (
	alpnH2    = "h2"
	alpnHTTP1 = "http/1.1"
)

// ALPN is told the target's ALPN answers (protocol auto). The target's HTTP/2 pool
// implements it.
type ALPN interface {
	// Learn records the protocol the target chose on a new connection ("h2", "http/1.1").
	Learn(proto string)
	// Adopt takes a new connection on which the target chose h2, and reports whether it
	// did (if not, it closed it). It is called after Learn("h2").
	Adopt(c net.Conn) bool
}

// alpnConfig returns the TLS config of an auto pool's dials: the pool's, offering h2 first.
func alpnConfig(c *tls.Config) *tls.Config {
	a := c.Clone() // shares the session cache
	a.NextProtos = []string{alpnH2, alpnHTTP1}
	return a
}

// negotiated returns the ALPN answer on s ("http/1.1" when the target chose none) and tells
// the pool's ALPN; "" when the pool does not negotiate.
func (p *Pool) negotiated(s *tlsSocket) string {
	if p.opts.ALPN == nil || s == nil {
		return ""
	}
	proto := s.tc.ConnectionState().NegotiatedProtocol
	if proto != alpnH2 {
		proto = alpnHTTP1
	}
	p.opts.ALPN.Learn(proto)
	return proto
}

// handOver gives s, a new connection on which the target chose h2, to the HTTP/2 pool and
// frees its slot here.
func (p *Pool) handOver(s *tlsSocket) {
	took := p.opts.ALPN.Adopt(s.tc)
	p.mu.Lock()
	p.countHandshakeLocked(s)
	if took {
		p.stats.handedH2++
	}
	p.freeSlotLocked()
	p.mu.Unlock()
	if !took {
		_ = s.close()
	}
}

// DialH2 opens a connection for the target's HTTP/2 pool (protocol auto): TLS offering h2
// and http/1.1, under ConnectTimeout. When the target chose h2 it returns the connection
// (the pool keeps no part of it). When it chose HTTP/1.1 the connection stays in this pool
// as a fresh idle one (closed at MaxConns or when the pool is closed) and DialH2 returns a nil
// conn and "http/1.1". Errors are *reason.Error, as the pool's own dials'.
func (p *Pool) DialH2(ctx context.Context) (net.Conn, string, error) {
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, p.opts.ConnectTimeout)
	defer cancel()
	nc, err := p.opts.Dial(dctx, "tcp", p.addr)
	var s *tlsSocket
	if err == nil {
		s, err = p.handshake(dctx, nc)
	}
	if err != nil { // counted, but no slot to free: the dial took none
		rerr := p.dialReason(ctx, err)
		p.mu.Lock()
		p.countDialErrorLocked(rerr)
		p.mu.Unlock()
		return nil, "", rerr
	}
	proto := s.tc.ConnectionState().NegotiatedProtocol
	if proto == alpnH2 {
		p.mu.Lock()
		p.countHandshakeLocked(s)
		p.mu.Unlock()
		return s.tc, alpnH2, nil
	}
	now := time.Now()
	p.mu.Lock()
	if p.closed || p.opts.MaxConns > 0 && p.total >= p.opts.MaxConns {
		p.mu.Unlock()
		_ = s.close()
		return nil, alpnHTTP1, nil
	}
	p.total++
	c := p.addDialedLocked(nc, s, start, now.Sub(start))
	c.pre = true // a request takes it first (refreshLocked); counted as a preconnect
	p.stats.fromH2++
	p.stats.preconnects++
	p.giveLocked(c)
	p.mu.Unlock()
	return nil, alpnHTTP1, nil
}

// addDialedLocked registers a connection dialed off the request path (a preconnect, a
// DialH2) in a slot already counted in total; start is when its dial started, its idle start
// (newConn).
func (p *Pool) addDialedLocked(nc net.Conn, s *tlsSocket, start time.Time, took time.Duration) *Conn {
	c := newConn(nc, s, start)
	p.countHandshakeLocked(s)
	p.live[c.ID] = c
	p.stats.opened++
	p.pre.noteDial(took)
	return c
}

// giveLocked hands c, a new unused connection, to the first waiter, or puts it on the idle
// stack: on top, unless conns were released while it was dialed (its idle start is its
// dial's start, insertIdleLocked).
func (p *Pool) giveLocked(c *Conn) {
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		w.ch <- grant{c: c}
		return
	}
	c.state = stateIdle
	p.insertIdleLocked(c)
	if p.sweeperDueLocked() {
		go p.sweep()
	}
}

// countHandshakeLocked counts the TLS handshake of a new connection, full or resumed (none
// for plain TCP, s nil), whichever pool keeps it.
func (p *Pool) countHandshakeLocked(s *tlsSocket) {
	switch {
	case s == nil:
	case s.tc.ConnectionState().DidResume:
		p.stats.tlsResumed++
	default:
		p.stats.tlsFull++
	}
}
