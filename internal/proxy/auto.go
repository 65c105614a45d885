package proxy

// Protocol auto: a target of the upstream has an HTTP/1.1 pool and an HTTP/2 pool, one TLS
// dialer offering ALPN ["h2", "http/1.1"] (connpool/alpn.go), and the target's latest answer
// (h2pool/alpn.go) decides which pool an attempt goes to. A dial can find that the answer
// changed (a backend redeployed with or without h2): the pool that dialed hands the new
// connection to the other pool and ends the attempt with "switched" before anything of the
// request was sent, and the attempt goes on in the other pool, which finds that connection
// waiting. That costs the request nothing: it is not an attempt of its own and counts against
// no retry limit. A request that needs HTTP/2 (gRPC) always goes to the HTTP/2 pool, which
// asks the target again at most once per h2pool.DefaultReprobeInterval while it answers
// HTTP/1.1, and otherwise fails with upstream_h2_unavailable (not sent: the retry rules may
// take another target).

import (
	"context"
	"fmt"
	"time"

	"sluice/internal/config"
	"sluice/internal/h1"
	"sluice/internal/reason"
	"sluice/internal/upstream"
)

// maxSwitches bounds the pool changes of one attempt. One suffices when the target answers
// the same at consecutive dials (the connection the switch was made for waits in the other
// pool); a target whose every dial answers differently (a mixed fleet behind one address)
// could otherwise bounce a request for ever.
const maxSwitches = 3

// attemptAuto makes one try on t, a target of a protocol auto upstream.
func (p *Proxy) attemptAuto(ctx context.Context, cl *call, t *upstream.Target, now time.Time) result {
	h2 := t.H2.Serves() || cl.fwd.wantsH2()
	for range maxSwitches {
		var res result
		if h2 {
			res = p.attemptH2(ctx, cl, t, now)
		} else {
			res = p.attemptH1(ctx, cl, t, now)
		}
		if !res.switched {
			return res
		}
		h2, now = !h2, time.Now()
	}
	re := reason.New(502, reason.ConnectFailed, t.Addr, fmt.Errorf("the target's ALPN answer (h2 or http/1.1) changed at each of %d dials", maxSwitches))
	cl.r.rec.add(Attempt{Target: t.Addr, Outcome: string(re.Code), Start: now, End: time.Now(), Protocol: protoHTTP1})
	return result{err: re, cond: config.RetryConnectFailure, notSent: true}
}

// negotiatedHTTP1 ends an HTTP/2 attempt whose pool found that t chose HTTP/1.1 (err is
// h2pool.ErrNegotiatedHTTP1): switched, so that the request goes to the HTTP/1.1 pool,
// unless it needs HTTP/2 or (never expected: the stream did not start) body bytes were read.
func (p *Proxy) negotiatedHTTP1(cl *call, t *upstream.Target, body *h2Body, now time.Time, err error) result {
	fwd := &cl.fwd
	taken, _ := body.stop()
	fwd.taken = fwd.taken || taken
	if !taken && !fwd.wantsH2() {
		return result{switched: true}
	}
	re := reason.New(502, reason.H2Unavailable, t.Addr, fmt.Errorf("%w; a gRPC request needs HTTP/2", err))
	if taken {
		re = reason.New(502, reason.ConnectFailed, t.Addr, err)
	}
	cl.r.rec.add(Attempt{Target: t.Addr, Outcome: string(re.Code), Start: now, End: time.Now(), Protocol: protoHTTP1})
	return result{err: re, cond: config.RetryConnectFailure, notSent: true}
}

// wantsH2 reports whether the request can only be served over HTTP/2: a gRPC call
// (content-type application/grpc, +proto, +json...), whose trailers and framing HTTP/1.1
// does not carry.
func (f *forward) wantsH2() bool {
	if f.web != webNone {
		return true // a grpc-web call, translated to gRPC (grpcweb.go)
	}
	v, ok := f.req.Header.Get("Content-Type")
	const grpc = "application/grpc"
	if !ok || len(v) < len(grpc) {
		return false
	}
	if !h1.EqualFold(v[:len(grpc)], grpc) {
		return false
	}
	return len(v) == len(grpc) || v[len(grpc)] == '+' || v[len(grpc)] == ';'
}
