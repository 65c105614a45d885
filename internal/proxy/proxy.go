// Package proxy forwards one client request to an upstream over Sluice's own HTTP/1.1 codec
// and pooled connections, and streams the response back. It decides, per attempt, whether a
// failure may be retried from what provably happened on the connection (see classify).
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/h1"
	"sluice/internal/netio"
	"sluice/internal/reason"
	"sluice/internal/server"
	"sluice/internal/upstream"
)

// maxAttempts bounds tries per request, whatever the failures: the most retry.attempts allows
// plus the re-sends of requests that met a dead pooled connection.
const maxAttempts = 10 + maxStaleResends

// clientCheckInterval is how often a slow upstream wait checks whether the client left.
const clientCheckInterval = 250 * time.Millisecond

// Proxy forwards requests. It is stateless apart from buffers and safe for concurrent use.
type Proxy struct {
	log           *slog.Logger
	exposeDetails atomic.Bool
	budgets       sync.Map // upstream ID -> *budget; kept across reloads
}

// New returns a Proxy.
func New(log *slog.Logger) *Proxy {
	return &Proxy{log: log.With("component", "proxy")}
}

// ExposeDetails sets whether error bodies include the internal cause.
func (p *Proxy) ExposeDetails(on bool) { p.exposeDetails.Store(on) }

// Attempt describes one try of a request, for the access log.
type Attempt struct {
	Target  string
	ConnID  uint64
	Reused  bool
	IdleAge time.Duration
	Outcome string // "ok" or a reason code
	Retry   string // the condition under which the next attempt was made, "" if none
}

// Record is what the proxy tells the access log about a request.
type Record struct {
	Target       string
	Reason       reason.Code
	Err          error
	UpstreamTime time.Duration
	Attempts     [maxAttempts]Attempt
	NumAttempts  int
	ClientGone   bool
	// Retries counts attempts after the first (stale-connection re-sends included).
	Retries         int
	BudgetExhausted bool
}

func (r *Record) add(a Attempt) *Attempt {
	if r.NumAttempts < len(r.Attempts) {
		r.Attempts[r.NumAttempts] = a
		r.NumAttempts++
		return &r.Attempts[r.NumAttempts-1]
	}
	return &Attempt{}
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// call is the per-request state of Serve, pooled so that a proxied request allocates little:
// the forward (with the upstream response head and body reader), the retrier and the targets
// tried.
type call struct {
	fwd   forward
	r     retrier
	tried [maxAttempts]*upstream.Target
	pick  upstream.Pick
}

var calls = sync.Pool{New: func() any { return new(call) }}

// release returns cl to the pool, dropping its references to this request.
func (cl *call) release() {
	cl.tried = [maxAttempts]*upstream.Target{}
	cl.pick = upstream.Pick{}
	cl.r = retrier{}
	cl.fwd.ex, cl.fwd.rt = nil, nil
	calls.Put(cl)
}

// Serve forwards ex to rt's upstream and writes the response (or a gateway error) to ex.
func (p *Proxy) Serve(ctx context.Context, ex *server.Exchange, rt *Route, rec *Record) {
	ex.SetBodyLimit(rt.MaxBodyBytes)
	if lim := ex.BodyLimit(); lim > 0 && ex.Req.ContentLength > lim {
		p.fail(ex, rec, reason.New(413, reason.BodyTooLarge, "", errors.New("declared Content-Length above the limit")))
		return
	}
	cl := calls.Get().(*call)
	defer cl.release()
	fwd := &cl.fwd
	fwd.init(ex, rt)
	if ex.HasBody() {
		defer fwd.releaseBody()
		if err := fwd.readBodyPrefix(rt.retry.bufferBody); err != nil {
			res := clientBodyFailure(nil, err)
			if res.clientGone {
				rec.ClientGone = true
				ex.CloseAfter()
				return
			}
			p.fail(ex, rec, res.err)
			return
		}
	}
	u := rt.Upstream
	if !u.Admit() {
		p.fail(ex, rec, reason.New(503, reason.UpstreamOverloaded, "", fmt.Errorf("upstream %q: limits.max_concurrent_requests reached", u.ID)))
		return
	}
	defer u.Release()
	// One clock read serves the first attempt's pick, checkout and the retry budget.
	start := time.Now()
	defer func() { rec.UpstreamTime = time.Since(start) }()
	r := &cl.r
	r.init(p, ex, rt, fwd, rec, start)
	defer r.release()

	tried := &cl.tried
	for n := 0; n < maxAttempts; n++ {
		now := start
		if n > 0 {
			now = time.Now() // after a failure and a backoff
		}
		t := u.PickInto(&cl.pick, reqInfo{ex}, tried[:n], now)
		if t == nil {
			if n == 0 {
				p.fail(ex, rec, reason.New(503, reason.NoHealthyTarget, "", fmt.Errorf("upstream %q has no available target", u.ID)))
			} else {
				p.fail(ex, rec, reason.From(rec.Err))
			}
			return
		}
		tried[n] = t
		rec.Target = t.Addr
		res := p.attempt(ctx, ex, rt, fwd, t, r, rec, now)
		if res.err == nil {
			rec.Reason, rec.Err = "", nil
			return
		}
		rec.Reason, rec.Err = res.err.Code, res.err
		if res.clientGone {
			rec.ClientGone = true
			ex.CloseAfter()
			return
		}
		if final := r.next(ctx, res, n); final != nil {
			p.fail(ex, rec, final)
			return
		}
	}
	p.fail(ex, rec, reason.From(rec.Err))
}

func (p *Proxy) fail(ex *server.Exchange, rec *Record, e *reason.Error) {
	rec.Reason, rec.Err = e.Code, e
	detail := ""
	if p.exposeDetails.Load() && e.Err != nil {
		detail = e.Err.Error()
	}
	ex.WriteError(e, detail)
}

// result is the outcome of one attempt.
type result struct {
	err *reason.Error
	// cond is the retry condition this failure falls under (config.Retry* values), "" when
	// no condition covers it (a bad response, a full pool queue).
	cond string
	// notSent: provably no request byte reached the backend.
	notSent    bool
	reused     bool
	clientGone bool
	clientSide bool // the client's side failed (body too large, unreadable, too slow)
}

// attempt makes one try on t; now is the time it starts.
func (p *Proxy) attempt(ctx context.Context, ex *server.Exchange, rt *Route, fwd *forward, t *upstream.Target, r *retrier, rec *Record, now time.Time) result {
	gctx := ctx
	if rt.connectOverride {
		var cancel context.CancelFunc
		gctx, cancel = context.WithTimeout(ctx, rt.Connect)
		defer cancel()
	}
	var c *connpool.Conn
	var err error
	if r.fresh {
		c, err = t.Pool.GetFresh(gctx)
	} else {
		c, err = t.Pool.GetAt(gctx, r.reuseOK(), now)
	}
	if err != nil {
		re := reason.From(err)
		re.Target = t.Addr
		rec.add(Attempt{Target: t.Addr, Outcome: string(re.Code)})
		if re.Code == reason.ConnectRefused || re.Code == reason.ConnectFailed || re.Code == reason.ConnectTimeout {
			rt.Upstream.Done(t, upstream.Result{Failed: true})
			return result{err: re, cond: config.RetryConnectFailure, notSent: true}
		}
		return result{err: re}
	}
	t.InFlight.Add(1)
	defer t.InFlight.Add(-1)
	a := rec.add(Attempt{Target: t.Addr, ConnID: c.ID, Reused: c.Reused, IdleAge: c.IdleAge})
	start := now
	if !c.Reused || c.Queued {
		start = time.Now() // after a dial or a wait: the balancer's latency is the exchange's
	}
	res, out := p.exchange(ex, rt, fwd, t, c, r)
	end := time.Now()
	out.End = end
	res.reused = c.Reused
	if res.err != nil {
		a.Outcome = string(res.err.Code)
		out.Err = res.err
	} else {
		a.Outcome = "ok"
	}
	t.Pool.Release(c, out)
	if res.reused && (res.cond == config.RetryResetBeforeResponse || res.cond == config.RetryResetBeforeRequest) {
		res.err.Err = explainReuse(t, c.IdleAge, res.err.Err)
	}
	if !res.clientGone && !res.clientSide {
		status := ex.Status()
		if res.cond == config.RetryStatus {
			status = res.err.Status
		}
		rt.Upstream.Done(t, upstream.Result{Latency: end.Sub(start), Failed: res.err != nil, Status: status})
	}
	return res
}

// exchange writes the request on c, reads the response head, and streams the response.
func (p *Proxy) exchange(ex *server.Exchange, rt *Route, fwd *forward, t *upstream.Target, c *connpool.Conn, r *retrier) (result, connpool.Outcome) {
	nc := c.NetConn()
	netio.ArmWrite(nc, rt.Write)
	err := fwd.writeHead(c.W, t)
	if err == nil {
		err = c.W.Flush()
	}
	if err != nil {
		return p.sendFailure(c, t, err), failed("")
	}
	if ex.HasBody() {
		if res, ok := p.sendBody(ex, rt, fwd, c, t); !ok {
			return res, failedBy(res)
		}
	}
	resp := &fwd.resp
	isHEAD := string(ex.Req.Method) == "HEAD"
	for {
		if res, ok := p.awaitResponse(ex, r.tryTimeout(), c, t); !ok {
			return res, failedBy(res)
		}
		if err := h1.ReadResponse(c.R, resp, isHEAD, h1.Limits{}); err != nil {
			return p.readFailure(c, t, err), failed(connpool.CloseProtocolError)
		}
		if resp.Status >= 200 || resp.Status == 101 {
			break
		}
		// Interim 1xx responses (100 Continue, 103 Early Hints) are not relayed.
	}
	if resp.Status == 101 {
		return result{err: reason.New(502, reason.BadResponse, t.Addr, errors.New("protocol upgrade is not supported"))}, failed(connpool.CloseProtocolError)
	}
	if r.retryStatus(resp.Status) {
		return p.discardResponse(c, t, resp, isHEAD)
	}
	return p.relayResponse(ex, rt, c, t, resp, &fwd.body, isHEAD)
}

// failed is the outcome of a failed exchange. An empty reason lets the pool judge the failure
// from the connection's facts (a reused connection that failed before any response byte
// teaches it the backend's idle timeout).
func failed(why connpool.CloseReason) connpool.Outcome {
	return connpool.Outcome{Reason: why, KeepAliveMax: -1}
}

// failedBy is failed with the reason that fits res: a client-side failure must not be taken
// for the backend closing the connection.
func failedBy(res result) connpool.Outcome {
	if res.clientSide || res.clientGone {
		return failed(connpool.CloseRequestError)
	}
	return failed("")
}

// sendFailure classifies a failed write of the request.
func (p *Proxy) sendFailure(c *connpool.Conn, t *upstream.Target, err error) result {
	if isTimeout(err) {
		return result{err: reason.New(504, reason.ResponseTimeout, t.Addr, err), cond: config.RetryTimeout}
	}
	if c.BytesWritten() == 0 {
		return result{err: reason.New(502, reason.ResetBeforeSend, t.Addr, err), cond: config.RetryResetBeforeRequest, notSent: true}
	}
	return result{err: reason.New(502, reason.ResetBeforeResp, t.Addr, err), cond: config.RetryResetBeforeResponse}
}

// readFailure classifies a failure to read the response head.
func (p *Proxy) readFailure(c *connpool.Conn, t *upstream.Target, err error) result {
	var pe *h1.Error
	switch {
	case errors.As(err, &pe):
		return result{err: reason.New(502, reason.BadResponse, t.Addr, err)}
	case isTimeout(err):
		return result{err: reason.New(504, reason.ResponseTimeout, t.Addr, err), cond: config.RetryTimeout}
	case c.BytesRead() == 0:
		return result{err: reason.New(502, reason.ResetBeforeResp, t.Addr, err), cond: config.RetryResetBeforeResponse}
	default:
		return result{err: reason.New(502, reason.BadResponse, t.Addr, err)}
	}
}

// awaitResponse waits for the first response byte, up to the read timeout, checking now and
// then whether the client is still there: a client that left cancels the upstream request.
func (p *Proxy) awaitResponse(ex *server.Exchange, timeout time.Duration, c *connpool.Conn, t *upstream.Target) (result, bool) {
	nc := c.NetConn()
	now := time.Now()
	var deadline time.Time
	if timeout > 0 {
		deadline = now.Add(timeout)
	}
	late := netio.Slack(timeout)
	if c.R.Buffered() > 0 {
		// Bytes after an interim (1xx) response: what is missing of the head is read under
		// the whole wait's deadline, not the client-check step left armed by the first wait.
		if !h1.HeadBuffered(c.R) {
			netio.ExtendRead(nc, deadline, late)
		}
		return result{}, true
	}
	for {
		armResponseWait(nc, now, deadline, late)
		_, err := c.R.Peek(1)
		if err == nil {
			if !h1.HeadBuffered(c.R) {
				// The rest of the head is read under the whole wait's deadline; a complete
				// head needs no read, and streamBody arms the body's reads itself.
				netio.ExtendRead(nc, deadline, late)
			}
			return result{}, true
		}
		if !isTimeout(err) {
			return p.readFailure(c, t, err), false
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return p.readFailure(c, t, err), false
		}
		if ex.ClientGone() {
			return result{err: reason.New(499, reason.ClientBodyError, t.Addr, errors.New("client closed the connection while waiting for the upstream")), clientGone: true}, false
		}
		now = time.Now()
	}
}

// armResponseWait arms the wait for response bytes: the next client-check step (up to half a
// step late, but never past the deadline's own lateness), or the deadline when it comes first.
func armResponseWait(nc net.Conn, now, deadline time.Time, late time.Duration) {
	step, stepLate := now.Add(clientCheckInterval), clientCheckInterval/2
	if !deadline.IsZero() {
		if deadline.Before(step) {
			netio.ExtendRead(nc, deadline, late)
			return
		}
		stepLate = min(stepLate, deadline.Add(late).Sub(step))
	}
	netio.ExtendRead(nc, step, stepLate)
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

func isIdempotent(method []byte) bool {
	switch string(method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		return true
	}
	return false
}

// sendBody streams the client's request body to the upstream.
func (p *Proxy) sendBody(ex *server.Exchange, rt *Route, fwd *forward, c *connpool.Conn, t *upstream.Target) (result, bool) {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var cw h1.ChunkedWriter
	var w io.Writer = c.W
	if ex.Req.Chunked {
		cw.Reset(c.W)
		w = &cw
	}
	nc := c.NetConn()
	if _, err := w.Write(fwd.pre); err != nil {
		return p.sendFailure(c, t, err), false
	}
	splice := c.Socket() != nil
	for !fwd.preEOF {
		// The rest of a large Content-Length body goes socket to socket (splice) once none
		// of it is buffered; the head and the bytes before it are written first.
		if splice && ex.BodyToSplice() >= spliceMin {
			res, spliced, ok := p.spliceRequestBody(ex, rt, c, t)
			if !ok {
				return res, false
			}
			splice = spliced
		}
		n, rerr := ex.ReadBody(buf)
		if n > 0 {
			netio.ArmWrite(nc, rt.Write)
			if _, err := w.Write(buf[:n]); err != nil {
				return p.sendFailure(c, t, err), false
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return clientBodyFailure(t, rerr), false
		}
	}
	// The last client read may have waited long past the last write's deadline.
	netio.ArmWrite(nc, rt.Write)
	if ex.Req.Chunked {
		if err := cw.Close(ex.BodyTrailer()); err != nil {
			return p.sendFailure(c, t, err), false
		}
	}
	if err := c.W.Flush(); err != nil {
		return p.sendFailure(c, t, err), false
	}
	return result{}, true
}

func clientBodyFailure(_ *upstream.Target, err error) result {
	switch {
	case errors.Is(err, server.ErrBodyTooLarge):
		return result{err: reason.New(413, reason.BodyTooLarge, "", err), clientSide: true}
	case isTimeout(err):
		return result{err: reason.New(408, reason.ClientTimeout, "", err), clientSide: true}
	default:
		var pe *h1.Error
		if errors.As(err, &pe) {
			return result{err: reason.New(400, reason.BadRequest, "", err), clientSide: true}
		}
		return result{err: reason.New(400, reason.ClientBodyError, "", err), clientGone: true}
	}
}

// explainReuse adds to a failure on a reused connection what the operator needs to act on it:
// how long the connection had been idle and what Sluice believes the backend's idle timeout is.
func explainReuse(t *upstream.Target, idle time.Duration, err error) error {
	learned, src, eff := t.Pool.Learned()
	if learned > 0 {
		return fmt.Errorf("%w (reused connection idle %s; learned backend idle timeout %s from %s; now reusing up to %s)",
			err, idle.Round(time.Millisecond), learned.Round(time.Millisecond), src, eff.Round(time.Millisecond))
	}
	return fmt.Errorf("%w (reused connection idle %s; backend idle timeout not learned yet; now reusing up to %s)",
		err, idle.Round(time.Millisecond), eff.Round(time.Millisecond))
}

// spliceRequestBody moves the rest of a large Content-Length request body from the client's
// socket to the upstream's (netio.Splice), after flushing what was written so far. spliced
// is false when the splice could not start: nothing was moved, the copy loop goes on. ok is
// false when the send failed; res says how.
func (p *Proxy) spliceRequestBody(ex *server.Exchange, rt *Route, c *connpool.Conn, t *upstream.Target) (res result, spliced, ok bool) {
	nc := c.NetConn()
	netio.ArmWrite(nc, rt.Write)
	if err := c.W.Flush(); err != nil {
		return p.sendFailure(c, t, err), true, false
	}
	s, started := ex.SpliceBodyTo(c.Socket(), func() { netio.ArmWrite(nc, rt.Write) })
	if !started {
		return result{}, false, true
	}
	c.AddWritten(s.Moved)
	switch {
	case s.ReadErr != nil:
		return clientBodyFailure(t, s.ReadErr), true, false
	case s.WriteErr != nil:
		return p.sendFailure(c, t, s.WriteErr), true, false
	}
	return result{}, true, true
}
