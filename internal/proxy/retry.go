package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/h1"
	"sluice/internal/reason"
	"sluice/internal/upstream"
)

// maxStaleResends bounds the re-sends of a request whose pooled connection turned out dead
// before any byte was written. Such re-sends are free (the backend never saw the request) and
// are not counted as retries.
const maxStaleResends = 2

// retryPolicy is a route's compiled retry policy (config.Retry with defaults applied).
type retryPolicy struct {
	attempts      int
	perTry        time.Duration
	deadline      time.Duration
	backoffBase   time.Duration
	backoffMax    time.Duration
	on            map[string]bool
	statuses      [100]bool // index: status-500
	nonIdempotent bool
	idemHeader    string
	budgetPercent float64
	budgetMin     float64
	bufferBody    int64
}

func newRetryPolicy(r config.Retry) retryPolicy {
	rp := retryPolicy{
		attempts: *r.Attempts, perTry: r.PerTryTimeout.D(), deadline: r.Deadline.D(),
		backoffBase: r.BackoffBase.D(), backoffMax: r.BackoffMax.D(), on: map[string]bool{},
		nonIdempotent: *r.NonIdempotent, idemHeader: *r.IdempotencyHeader,
		budgetPercent: *r.BudgetPercent, budgetMin: *r.BudgetMinPerSecond, bufferBody: *r.BufferBody,
	}
	for _, c := range r.On {
		rp.on[c] = true
	}
	for _, s := range r.Statuses {
		if s >= 500 && s < 600 {
			rp.statuses[s-500] = true
		}
	}
	return rp
}

// retrier carries a request's retry state from attempt to attempt and acts on decide's
// verdicts: it counts, takes budget tokens and retry slots, logs, and backs off.
type retrier struct {
	p      *Proxy
	ds     Downstream
	rt     *Route
	fwd    *forward
	rec    *Record
	pol    *retryPolicy
	budget *budget
	safe   bool      // idempotent, keyed, or opted in: may be retried after it may have been processed
	end    time.Time // the retry deadline (zero: none)
	tries  int       // attempts counted against pol.attempts
	stale  int       // free re-sends after dead pooled connections

	retrySlot bool // holds one of the upstream's concurrent-retry slots
	fresh     bool // later attempts dial new connections

	// The end of a gRPC call's grpc-timeout (zero: none), read by the first HTTP/2 attempt
	// (callRead; grpcdeadline.go).
	callEnd  time.Time
	callRead bool
}

// init prepares r for a request.
func (r *retrier) init(p *Proxy, ds Downstream, rt *Route, fwd *forward, rec *Record, start time.Time) {
	pol := &rt.retry
	*r = retrier{p: p, ds: ds, rt: rt, fwd: fwd, rec: rec, pol: pol, tries: 1}
	// An upgrade opens a session on the backend: once written, it is never sent again.
	r.safe = requestSafe(fwd.req, pol) && fwd.upgrade == nil
	if pol.deadline > 0 {
		r.end = start.Add(pol.deadline)
	}
	r.budget = p.routeBudget(rt)
	r.budget.request(start)
}

// requestSafe reports whether a request may be sent again after the backend may have
// processed it: its method is idempotent (RFC 9110 §9.2.2), it carries the route's
// idempotency key header, or the route opted in with retry.non_idempotent.
func requestSafe(req *h1.Request, pol *retryPolicy) bool {
	if isIdempotent(req.Method) || pol.nonIdempotent {
		return true
	}
	if pol.idemHeader != "" {
		if v, ok := req.Header.Get(pol.idemHeader); ok && len(v) > 0 {
			return true
		}
	}
	return false
}

// reuseOK tells the pool whether this request may go on any pooled connection: requests that
// must not be retried after being sent get only fresh-enough ones.
func (r *retrier) reuseOK() bool { return r.safe }

// tryTimeout is how long this attempt waits for the response head.
func (r *retrier) tryTimeout() time.Duration {
	d := r.rt.Read
	if r.pol.perTry > 0 && (d <= 0 || r.pol.perTry < d) {
		d = r.pol.perTry
	}
	if !r.end.IsZero() {
		left := time.Until(r.end)
		if left <= 0 {
			left = time.Millisecond
		}
		if d <= 0 || left < d {
			d = left
		}
	}
	return d
}

// facts gathers what decide needs about failed attempt n (res).
func (r *retrier) facts(res result, n int) attemptFacts {
	return attemptFacts{
		cond: res.cond, notSent: res.notSent, unprocessed: res.unprocessed, reused: res.reused, canceled: res.canceled,
		headSent: r.ds.Status() != 0, attempts: n + 1, tries: r.tries, resends: r.stale,
		safe: r.safe, replayable: r.fwd.replayable(), pastDeadline: r.pastDeadline(),
	}
}

// retryStatus reports whether a response with this status should be discarded and the request
// tried again. It takes a budget token and a retry slot when it says yes.
func (r *retrier) retryStatus(status int) bool {
	if !r.pol.retriesStatus(status) {
		// decide could not say retry (rule 3 needs the status listed; rule 2 needs an
		// unsent request, and this one was answered): skip gathering the facts, which
		// every response would otherwise pay for (a map lookup, interface calls).
		return false
	}
	f := r.facts(result{cond: config.RetryStatus}, r.rec.NumAttempts-1) // this attempt is recorded
	f.status = status
	if decide(f, r.pol).action != actRetry {
		return false
	}
	return r.budget.take(r.pol, time.Now()) && r.admitRetry()
}

// admitRetry takes a slot of the upstream's limits.max_concurrent_retries for the rest of
// this request (one slot however many retries it makes).
func (r *retrier) admitRetry() bool {
	if r.retrySlot {
		return true
	}
	r.retrySlot = r.rt.Upstream.AdmitRetry()
	return r.retrySlot
}

// release gives back the retry slot, if one was taken.
func (r *retrier) release() {
	if r.retrySlot {
		r.rt.Upstream.ReleaseRetry()
	}
}

// pastDeadline reports whether retry.deadline has come.
func (r *retrier) pastDeadline() bool { return passed(r.end) }

// passed reports whether the time t (zero: none) has come.
func passed(t time.Time) bool { return !t.IsZero() && !time.Now().Before(t) }

// next acts after failed attempt n (res): nil to try again (after any backoff), or the error
// to answer with.
func (r *retrier) next(ctx context.Context, res result, n int) *reason.Error {
	if r.callOver() && !res.clientSide && !res.canceled {
		// grpcdeadline.go: the client has stopped waiting. Whatever the attempt waited for
		// when the time ran out (a stream slot, a dial, a connection's SETTINGS: a connect
		// timeout is UNAVAILABLE, "safe to retry"), the answer is its deadline, and nothing
		// is retried.
		return callTimedOut(res.err)
	}
	var d decision
	if res.cond == config.RetryStatus {
		// retryStatus decided before discarding the response, and took the token and slot.
		d = decision{action: actRetry, fresh: res.reused, why: res.cond}
	} else {
		d = decide(r.facts(res, n), r.pol)
	}
	r.fresh = r.fresh || d.fresh
	switch d.action {
	case actAnswer:
		return res.err
	case actResend:
		r.stale++
		r.logRetry(ctx, res, d.why)
		return nil
	}
	if res.cond != config.RetryStatus { // retryStatus took these before discarding the response
		if !r.budget.take(r.pol, time.Now()) {
			r.rec.BudgetExhausted = true
			return reason.New(503, reason.RetryBudgetExhausted, res.err.Target, res.err)
		}
		if !r.admitRetry() {
			return reason.New(503, reason.RetryLimitReached, res.err.Target, res.err)
		}
	}
	r.tries++
	if err := r.backoff(ctx); err != nil {
		return canceled(ctx).err
	}
	if r.pastDeadline() {
		// The backoff ran into retry.deadline: no attempt starts after it.
		return res.err
	}
	if r.callOver() {
		return callTimedOut(res.err) // the backoff ran into the call's grpc-timeout
	}
	r.logRetry(ctx, res, d.why)
	return nil
}

func (r *retrier) logRetry(ctx context.Context, res result, why string) {
	r.rec.Retries++
	if r.rec.NumAttempts > 0 {
		r.rec.Attempts[r.rec.NumAttempts-1].Retry = why
	}
	if log := r.p.log; log.Enabled(ctx, slog.LevelDebug) {
		log.LogAttrs(ctx, slog.LevelDebug, "retrying request", slog.String("request_id", string(r.ds.RequestIDBytes())),
			slog.String("target", res.err.Target), slog.String("reason", string(res.err.Code)), slog.String("condition", why))
	}
}

// backoff sleeps a random time in [0, min(max, base * 2^(tries-2))] ("full jitter"), but not
// past the deadline or the call's grpc-timeout, and not past the request's cancellation (it
// then returns ctx's error).
func (r *retrier) backoff(ctx context.Context) error {
	ceil := r.pol.backoffBase << min(r.tries-2, 16)
	if ceil > r.pol.backoffMax || ceil <= 0 {
		ceil = r.pol.backoffMax
	}
	if ceil <= 0 {
		return ctx.Err()
	}
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	for _, end := range [...]time.Time{r.end, r.callEnd} {
		if !end.IsZero() {
			d = min(d, time.Until(end))
		}
	}
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// discardResponse reads and drops a response that will be retried, keeping the connection
// when its body is small, and reports it as a status failure.
func (p *Proxy) discardResponse(c *connpool.Conn, t *upstream.Target, resp *h1.Response, isHEAD bool) (result, connpool.Outcome) {
	res := result{err: reason.New(resp.Status, reason.UpstreamStatus, t.Addr, fmt.Errorf("retryable status %d", resp.Status)), cond: config.RetryStatus}
	out := connpool.Outcome{KeepAliveTimeout: resp.KeepAliveTimeout, KeepAliveMax: resp.KeepAliveMax, Reason: connpool.CloseBackendClose}
	if resp.NoBody || isHEAD {
		out.Reusable = !resp.Close
		return res, out
	}
	if resp.UntilClose || resp.ContentLength > 64<<10 {
		out.Reason = connpool.CloseRequestError
		return res, out
	}
	var body h1.BodyReader
	body.Reset(c.R, resp.ContentLength, resp.Chunked, 0)
	if !body.Buffered() {
		// Not the head wait's client-check step: a small body gets a second to arrive, or
		// the connection is dropped rather than reused.
		c.NetConn().SetReadDeadline(time.Now().Add(time.Second))
	}
	n, err := io.Copy(io.Discard, io.LimitReader(&body, 64<<10+1))
	if err != nil || n > 64<<10 || !body.Done() {
		out.Reason = connpool.CloseRequestError
		return res, out
	}
	out.Reusable = !resp.Close
	return res, out
}

// budget limits retries of one upstream to budgetPercent of its requests over a 10 s sliding
// window, with a floor of budgetMin retries per second, so that a failing backend is not
// hammered by a retry storm.
//
// Every request of the upstream counts itself here, so the count is an atomic add, not a
// mutex: a lock every request takes queues all of them behind a holder the OS stopped
// (docs/design.md, "The pool's lock, and the other locks every request takes"). The mutex
// only moves the window on, once a second, and guards the retries (take, on failures).
type budget struct {
	mu       sync.Mutex
	slot     atomic.Int64 // current second; moves forward only, under mu
	requests [budgetSlots]atomic.Int64
	retries  [budgetSlots]float64 // under mu
}

const budgetSlots = 10

func (p *Proxy) budgetFor(upstreamID string) *budget {
	if b, ok := p.budgets.Load(upstreamID); ok {
		return b.(*budget)
	}
	b, _ := p.budgets.LoadOrStore(upstreamID, &budget{})
	return b.(*budget)
}

// routeBudget is budgetFor(rt.Upstream.ID), looked up once per route. The pointer stays
// the one budgetFor would return for as long as the route serves: budgets are kept by
// upstream id across reloads, a route is kept by a reload only with its upstream, and
// PruneBudgets forgets only the budgets of upstreams the new config removed, whose routes
// are gone with them (a request still running on one keeps the budget it holds, as before).
func (p *Proxy) routeBudget(rt *Route) *budget {
	if b := rt.budget.Load(); b != nil {
		return b
	}
	b := p.budgetFor(rt.Upstream.ID)
	rt.budget.Store(b)
	return b
}

// PruneBudgets forgets the retry budgets of upstreams for which keep is false (those a new
// config removed). Budgets are kept by upstream ID across reloads, so that a reload does not
// hand a failing upstream a fresh budget; a request still running on a removed upstream keeps
// the budget it holds.
func (p *Proxy) PruneBudgets(keep func(upstreamID string) bool) {
	p.budgets.Range(func(k, _ any) bool {
		if id := k.(string); !keep(id) {
			p.budgets.Delete(id)
		}
		return true
	})
}

// advance moves the window on to second now, clearing the seconds it leaves behind. The
// slots are cleared before the new second is stored: a request that sees it counts after
// the clearing, and one that does not yet takes the mutex and waits for it. A clock read
// before the latest second (another goroutine's, or a step back) counts in its own second's
// slot while that second is still in the window (request), and never moves it back.
func (b *budget) advance(now int64) {
	b.mu.Lock()
	if slot := b.slot.Load(); now > slot {
		for s := max(slot+1, now-budgetSlots+1); s <= now; s++ {
			b.requests[s%budgetSlots].Store(0)
			b.retries[s%budgetSlots] = 0
		}
		b.slot.Store(now)
	}
	b.mu.Unlock()
}

// request counts one request made at at. A clock read before the window (a goroutine
// stopped for 10 s between reading it and counting) is not counted: its second's slot holds
// a later second now, and it would count there.
func (b *budget) request(at time.Time) {
	now := at.Unix()
	switch slot := b.slot.Load(); {
	case now > slot:
		b.advance(now)
	case now <= slot-budgetSlots:
		return
	}
	b.requests[now%budgetSlots].Add(1)
}

// take reserves one retry at at if the budget allows it.
func (b *budget) take(pol *retryPolicy, at time.Time) bool {
	now := at.Unix()
	if now > b.slot.Load() {
		b.advance(now)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	var reqs, rets float64
	for i := range budgetSlots {
		reqs += float64(b.requests[i].Load())
		rets += b.retries[i]
	}
	allowed := max(pol.budgetPercent/100*reqs, pol.budgetMin*budgetSlots)
	if rets+1 > allowed {
		return false
	}
	b.retries[now%budgetSlots]++
	return true
}
