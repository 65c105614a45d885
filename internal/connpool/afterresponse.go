package connpool

// Closes right after a response. All methods run under the pool mutex.
//
// A backend may end a connection right after its response without saying "Connection:
// close": a FIN, or a TLS close_notify, in a write of its own a moment after the response's
// last byte (a server that never keeps connections and does not say so, a proxy in front of
// one). The reuse check finds such a close only once it has arrived; a request that takes
// the conn within that moment (a client sending its next request at once) passes the check
// and meets the close after its head was written. A GET is then re-sent on a fresh conn; a
// POST is not (the backend may have read it) and fails. The learner could not help: the
// close came at an idle age below ReuseFloor, which it ignores as a restart or a crash; and
// self-healing took 12 failures to stop reuse (four halvings of 3 failures), then let a few
// more through each time it grew back.
//
// Such a backend never answers a second request on a conn. So once a conn that served a
// request was found closed (checkout check, sweep, TLS recheck) with a sample below
// ReuseFloor, or was reset on reuse at an idle age below ReuseFloor, and for LearnWindow after
// the latest such evidence, a non-idempotent request does not reuse a conn that has served
// only one request while it is idle less than minMargin (unsafeOKLocked): by that age a close
// sent right after the response has arrived, and the reuse check finds it. A conn that has
// served a second request has shown that its backend does not close it after each response
// (the conns behind one address may be closed differently), and an unused preconnected conn
// has had no response to close after: neither is held back. Idempotent requests are not
// bound: one that meets the close is re-sent on a fresh conn, and each close caught or met
// is more evidence. While the rule holds, a full idle stack keeps its older conns and closes
// the one just released instead (Release): a fast POST-only client would otherwise refill it
// with conns younger than minMargin and never reuse one.
//
// Before the first evidence a POST may still meet such a close (the first of a pool's
// reuses, at most): the reuse check cannot see what has not arrived. Holding POSTs off
// every conn that has not served a second request until some conn has (a pool that starts
// under the rule) would stop that one too, but was measured to cost a POST-only client on
// a new pool a fresh conn per request for its first minMargin: 146 connections for 200
// back-to-back POSTs to a keep-alive backend. After the evidence no POST meets such a close;
// a backend that closed one conn so for another reason (a crash, a restart) costs POSTs a
// fresh conn for a reuse younger than minMargin for LearnWindow, on conns that have not
// served a second request.
//
// The rule holds with Options.Learn off too. Learn is about estimating the backend's idle
// timeout (off: IdleTimeout alone bounds reuse); this rule estimates nothing about idle
// timeouts, it keeps non-idempotent requests off a conn whose close is on its way, which is
// the pool's promise whatever the idle timeout.

import (
	"context"
	"log/slog"
	"time"
)

// closedAfterResponseLocked records that a conn that served a request was closed by the
// backend at idle age age (below ReuseFloor), as how says, at now.
func (p *Pool) closedAfterResponseLocked(age time.Duration, how string, now time.Time) {
	l := &p.learn
	first := l.afterResp.IsZero()
	l.afterResp, p.due = now, time.Time{}
	if first {
		p.log.LogAttrs(context.Background(), slog.LevelInfo, "backend closes connections right after a response: non-idempotent requests wait for a young conn's close to arrive",
			slog.Duration("idle_age", age), slog.String("evidence", how),
			slog.Duration("unsafe_min_idle", p.opts.minMargin()), slog.Duration("for", p.opts.LearnWindow))
	}
}

// youngUnprovenLocked reports whether c, at idle age age, is a conn a non-idempotent request
// must not reuse: it has served one request, it is younger than minMargin, and a conn was
// seen closed right after its response within LearnWindow.
func (p *Pool) youngUnprovenLocked(c *Conn, age time.Duration) bool {
	return c.served == 1 && age < p.opts.minMargin() && p.afterResponseRuleLocked()
}

// afterResponseRuleLocked reports whether youngUnprovenLocked may hold a conn back.
func (p *Pool) afterResponseRuleLocked() bool {
	return !p.learn.afterResp.IsZero()
}

// expireAfterResponseLocked ends the rule LearnWindow after its latest evidence.
func (p *Pool) expireAfterResponseLocked(now time.Time) {
	l := &p.learn
	if l.afterResp.IsZero() || now.Sub(l.afterResp) <= p.opts.LearnWindow {
		return
	}
	l.afterResp = time.Time{}
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "no close right after a response lately: non-idempotent requests reuse young conns again",
		slog.Duration("quiet", p.opts.LearnWindow))
}
