package proxy

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/h1"
	"sluice/internal/reason"
	"sluice/internal/server"
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

// retrier decides, attempt by attempt, whether a failed request is tried again.
//
// The rule (RFC 9110 §9.2.2): a failure where no request byte reached the backend may be
// retried whatever the method. Any other failure may have been processed, so it is retried only
// when the request is idempotent (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), carries the
// idempotency key header, or its route opted in with retry.non_idempotent. A request is
// re-sent only if its body is held in full (or none of it was sent yet); retries go to another
// target when there is one, after a jittered backoff, within the retry budget of the upstream.
type retrier struct {
	p      *Proxy
	ex     *server.Exchange
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
}

// init prepares r for a request.
func (r *retrier) init(p *Proxy, ex *server.Exchange, rt *Route, fwd *forward, rec *Record, start time.Time) {
	pol := &rt.retry
	*r = retrier{p: p, ex: ex, rt: rt, fwd: fwd, rec: rec, pol: pol, tries: 1}
	r.safe = isIdempotent(ex.Req.Method) || pol.nonIdempotent
	if !r.safe && pol.idemHeader != "" {
		if v, ok := ex.Req.Header.Get(pol.idemHeader); ok && len(v) > 0 {
			r.safe = true
		}
	}
	if pol.deadline > 0 {
		r.end = start.Add(pol.deadline)
	}
	r.budget = p.budgetFor(rt.Upstream.ID)
	r.budget.request(start)
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

// retryStatus reports whether a response with this status should be discarded and the request
// tried again. It takes a budget token when it says yes.
func (r *retrier) retryStatus(status int) bool {
	if status < 500 || status > 599 || !r.pol.statuses[status-500] || !r.pol.on[config.RetryStatus] {
		return false
	}
	if !r.safe || r.tries >= r.pol.attempts || !r.fwd.replayable() || r.pastDeadline() {
		return false
	}
	return r.budget.take(r.pol) && r.admitRetry()
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

func (r *retrier) pastDeadline() bool { return !r.end.IsZero() && !time.Now().Before(r.end) }

// next decides after failed attempt n (res): nil to try again (after any backoff), or the
// error to answer with.
func (r *retrier) next(ctx context.Context, res result, n int) *reason.Error {
	if r.ex.HeadWritten() || n+1 >= maxAttempts {
		return res.err
	}
	// A pooled connection that died before anything was written: the request never reached
	// the backend, so re-send it at once, whatever the method and policy.
	if res.reused && res.notSent && r.stale < maxStaleResends && r.fwd.replayable() {
		r.stale++
		r.fresh = r.stale > 1 // the second re-send does not gamble on another pooled connection
		r.logRetry(ctx, res, "stale_connection")
		return nil
	}
	// After a failure on a reused connection, further attempts use new connections.
	r.fresh = r.fresh || res.reused
	if res.cond == config.RetryStatus {
		// retryStatus already checked the policy and took the budget token and retry slot.
		r.tries++
		r.logRetry(ctx, res, res.cond)
		r.backoff()
		return nil
	}
	switch {
	case res.cond == "" || !r.pol.on[res.cond]:
		return res.err
	case r.tries >= r.pol.attempts:
		return res.err
	case !res.notSent && !r.safe:
		return res.err
	case !r.fwd.replayable():
		return res.err
	case r.pastDeadline():
		return res.err
	case !r.budget.take(r.pol):
		r.rec.BudgetExhausted = true
		return reason.New(503, reason.RetryBudgetExhausted, res.err.Target, res.err)
	case !r.admitRetry():
		return reason.New(503, reason.RetryLimitReached, res.err.Target, res.err)
	}
	r.tries++
	r.logRetry(ctx, res, res.cond)
	r.backoff()
	return nil
}

func (r *retrier) logRetry(ctx context.Context, res result, why string) {
	r.rec.Retries++
	if r.rec.NumAttempts > 0 {
		r.rec.Attempts[r.rec.NumAttempts-1].Retry = why
	}
	r.p.log.LogAttrs(ctx, slog.LevelDebug, "retrying request", slog.String("request_id", r.ex.RequestID()),
		slog.String("target", res.err.Target), slog.String("reason", string(res.err.Code)), slog.String("condition", why))
}

// backoff sleeps a random time in [0, min(max, base * 2^(tries-2))] ("full jitter"), but not
// past the deadline.
func (r *retrier) backoff() {
	ceil := r.pol.backoffBase << min(r.tries-2, 16)
	if ceil > r.pol.backoffMax || ceil <= 0 {
		ceil = r.pol.backoffMax
	}
	if ceil <= 0 {
		return
	}
	d := time.Duration(rand.Int64N(int64(ceil) + 1))
	if !r.end.IsZero() {
		d = min(d, time.Until(r.end))
	}
	if d > 0 {
		time.Sleep(d)
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
type budget struct {
	mu       sync.Mutex
	slot     int64 // current second
	requests [budgetSlots]float64
	retries  [budgetSlots]float64
}

const budgetSlots = 10

func (p *Proxy) budgetFor(upstreamID string) *budget {
	if b, ok := p.budgets.Load(upstreamID); ok {
		return b.(*budget)
	}
	b, _ := p.budgets.LoadOrStore(upstreamID, &budget{})
	return b.(*budget)
}

func (b *budget) advanceLocked(now int64) {
	if now-b.slot >= budgetSlots {
		b.requests, b.retries = [budgetSlots]float64{}, [budgetSlots]float64{}
	} else {
		for s := b.slot + 1; s <= now; s++ {
			b.requests[s%budgetSlots], b.retries[s%budgetSlots] = 0, 0
		}
	}
	b.slot = now
}

// request counts one request made at now.
func (b *budget) request(at time.Time) {
	now := at.Unix()
	b.mu.Lock()
	if now != b.slot {
		b.advanceLocked(now)
	}
	b.requests[now%budgetSlots]++
	b.mu.Unlock()
}

// take reserves one retry if the budget allows it.
func (b *budget) take(pol *retryPolicy) bool {
	now := time.Now().Unix()
	b.mu.Lock()
	defer b.mu.Unlock()
	if now != b.slot {
		b.advanceLocked(now)
	}
	var reqs, rets float64
	for i := range budgetSlots {
		reqs += b.requests[i]
		rets += b.retries[i]
	}
	allowed := max(pol.budgetPercent/100*reqs, pol.budgetMin*budgetSlots)
	if rets+1 > allowed {
		return false
	}
	b.retries[now%budgetSlots]++
	return true
}
