package gateway

import (
	"fmt"
	"net"
	"sync/atomic"

	"sluice/internal/connpool"

	"sluice/internal/config"
	"sluice/internal/h2pool"
)

// h2Identity is the part of a pool's identity that the upstream protocol and h2 settings
// make: a reload that changes them gets new pools, so HTTP/1.1 and HTTP/2 connections to
// one address never share a pool (Kong/kong#10757).
func h2Identity(uc config.Upstream) string {
	if !uc.UsesH2() {
		return ""
	}
	h := uc.H2
	return fmt.Sprintf("%s %d %d %s %s %s", uc.Protocol, h.MaxConns, h.Draining(), h.PingAfterIdle.D(), h.ReadIdleTimeout.D(), h.PingTimeout.D())
}

// acquireH2 returns the HTTP/2 pool for addr, made on first use and kept with the pool
// reference acquire took (released, and closed, with it); nil for an HTTP/1.1 upstream.
func (u upstreamPools) acquireH2(name, addr string) *h2pool.Pool {
	if !u.uc.UsesH2() {
		return nil
	}
	id := u.id(name, addr)
	r := u.refs
	r.mu.Lock()
	defer r.mu.Unlock()
	ref := r.m[id]
	if ref == nil {
		return nil // not acquired: acquire comes first
	}
	if ref.h2 == nil {
		o := u.options(name)
		k := u.uc.Keepalive
		po := h2pool.Options{
			MaxConns: u.uc.H2.MaxConns, MaxDraining: u.uc.H2.Draining(), ConnectTimeout: u.uc.Timeouts.Connect.D(),
			IdleTimeout: k.IdleTimeout.D(), Learn: *k.Learn, SafetyFraction: *k.SafetyFraction,
			PingAfterIdle: u.uc.H2.PingAfterIdle.D(), ReadIdleTimeout: u.uc.H2.ReadIdleTimeout.D(),
			PingTimeout: u.uc.H2.PingTimeout.D(),
			MaxRequests: int64(k.MaxRequests), MaxLifetime: k.MaxLifetime.D(),
		}
		if o.TLS != nil {
			po.TLS = u.tls.poolConfig(name)
		}
		if ref.link != nil { // protocol auto: one dialer, the HTTP/1.1 pool (connpool/alpn.go)
			po.Auto, po.Dial = true, ref.p.DialH2
		}
		ref.h2 = h2pool.New(addr, po, u.log)
		if ref.link != nil {
			ref.link.h2.Store(ref.h2)
		}
	}
	return ref.h2
}

// alpnLink is the connpool.ALPN of an auto upstream's HTTP/1.1 pool: the target's HTTP/2
// pool, which is made just after it (acquireH2). Before that nothing is adopted.
type alpnLink struct{ h2 atomic.Pointer[h2pool.Pool] }

func (l *alpnLink) Learn(proto string) {
	if p := l.h2.Load(); p != nil {
		p.Learn(proto)
	}
}

func (l *alpnLink) Adopt(c net.Conn) bool {
	if p := l.h2.Load(); p != nil {
		return p.Adopt(c)
	}
	return false
}

var _ connpool.ALPN = (*alpnLink)(nil)
