package h2pool

// Protocol auto: the target's ALPN answer decides between HTTP/2 and HTTP/1.1.
//
// The pool of an auto upstream's target (Options.Auto) does not dial for itself: its dials go
// through Options.Dial, which the gateway points at the target's HTTP/1.1 pool (connpool), so
// that one dialer offers ALPN ["h2", "http/1.1"] and every TLS connection is built the same
// way, whichever pool asked for it. The answer is remembered here, per target (the pool is per
// target), and the proxy asks [Pool.Serves] which pool takes the next request:
//
//   - "h2": the connection is this pool's (Dial returns it, or the HTTP/1.1 pool hands over
//     one it dialed through [Pool.Adopt]). Requests go to this pool.
//   - "http/1.1" (or no ALPN answer, which is HTTP/1.1): the connection is the HTTP/1.1
//     pool's (it keeps a connection dialed for this pool as a fresh idle one), and this pool's
//     RoundTrip ends with [ErrNegotiatedHTTP1] before anything of the request was sent.
//     Requests go to the HTTP/1.1 pool from then on.
//
// Before the first answer requests come here (a burst on a cold target then waits for one
// dial instead of dialing one connection per request, as the HTTP/1.1 pool would). A backend
// that changes its answer (redeployed with or without h2) is followed at the next dial that
// either pool makes: the request that made it is handed to the other pool, not failed.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"sluice/internal/reason"
)

// ErrNegotiatedHTTP1 is the error of a RoundTrip on an auto pool whose dial found that the
// target chose HTTP/1.1 (ALPN): nothing of the request was sent, and the connection went to
// the target's HTTP/1.1 pool, where the request belongs.
var ErrNegotiatedHTTP1 = errors.New("the target chose HTTP/1.1 in the TLS handshake (ALPN), not h2")

// Negotiated protocols (ALPN protocol IDs), as Snapshot.Negotiated and the logs show them.
const (
	ALPNH2    = "h2"
	ALPNHTTP1 = "http/1.1"
)

// DialFunc opens a TLS connection to the target offering ALPN h2 and http/1.1, and returns it
// when the target chose "h2". When it chose HTTP/1.1 it returns a nil conn, proto
// "http/1.1" and no error: the connection was kept by the HTTP/1.1 pool (or closed).
type DialFunc func(ctx context.Context) (c net.Conn, proto string, err error)

// Serves reports whether the pool takes the target's requests: always for protocol h2 and
// h2c; for auto, unless the target's latest ALPN answer was HTTP/1.1. It allocates nothing.
func (p *Pool) Serves() bool {
	return !p.opts.Auto || p.proto.Load() != protoHTTP1
}

// Auto reports whether the pool belongs to an upstream with protocol auto.
func (p *Pool) Auto() bool { return p.opts.Auto }

// Negotiated returns the target's latest ALPN answer ("h2", "http/1.1"), "" before the first
// (and for protocol h2 and h2c, which do not negotiate).
func (p *Pool) Negotiated() string { return protoNames[p.proto.Load()] }

// Learn records the target's ALPN answer on a new connection (either pool's); the first
// answer and every change are logged at info level and counted.
func (p *Pool) Learn(proto string) {
	v := protoHTTP1
	if proto == ALPNH2 {
		v = protoH2
	}
	old := p.proto.Swap(v)
	if old == v {
		return
	}
	p.mu.Lock()
	p.counters.ProtocolChanges++
	p.mu.Unlock()
	if old == protoUnknown {
		p.log.Info("upstream target protocol learned (ALPN)", "protocol", protoNames[v])
		return
	}
	p.log.Info("upstream target protocol changed (ALPN)", "old", protoNames[old], "new", protoNames[v])
}

// Adopt takes c, a new TLS connection on which the target chose h2 that the HTTP/1.1 pool
// dialed, as one of the pool's connections (the next stream goes on it). It reports false,
// and closes c, when it cannot (the pool is closed, or the HTTP/2 preface failed).
func (p *Pool) Adopt(c net.Conn) bool {
	p.Learn(ALPNH2)
	pc, err := p.clientConn(c)
	if err != nil {
		p.log.Info("HTTP/2 connection handed over by the HTTP/1.1 pool failed", "err", err)
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		pc.cc.Close()
		return false
	}
	p.counters.Dials++
	p.counters.Adopted++
	p.conns = append(p.conns, pc)
	p.wakeLocked() // a request waiting for a connection may take it
	return true
}

const (
	protoUnknown int32 = iota
	protoH2
	protoHTTP1
)

var protoNames = [...]string{protoUnknown: "", protoH2: ALPNH2, protoHTTP1: ALPNHTTP1}

// dialAuto is dial for an auto pool: Options.Dial, then the HTTP/2 preface.
func (p *Pool) dialAuto(ctx context.Context) (*conn, error) {
	if p.opts.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.ConnectTimeout)
		defer cancel()
	}
	nc, proto, err := p.opts.Dial(ctx)
	if err != nil {
		return nil, err
	}
	p.Learn(proto)
	if nc == nil {
		return nil, ErrNegotiatedHTTP1
	}
	return p.clientConn(nc)
}

// clientConn starts the HTTP/2 connection (the preface) on nc, a connection that agreed to h2
// or an h2c socket; on failure nc is closed.
func (p *Pool) clientConn(nc net.Conn) (*conn, error) {
	p.mu.Lock()
	p.nextID++
	id := p.nextID
	p.mu.Unlock()
	c := &conn{id: id, created: time.Now()}
	c.readAt = c.created
	c.idleSince.Store(c.created.UnixNano())
	cc, err := newClientConn(nc, func() { p.markDead(c) })
	if err != nil {
		nc.Close()
		return nil, reason.New(502, reason.ResetBeforeSend, p.addr, fmt.Errorf("HTTP/2 preface to %s: %w", p.addr, err))
	}
	c.cc = cc
	return c, nil
}
