// Package proxy forwards one client request to an upstream over Sluice's own HTTP/1.1 codec
// and pooled connections, and streams the response back. It sees the client side through
// the Downstream interface it declares, so any protocol can stand in front of it. It decides,
// per attempt, whether a failure may be retried from what provably happened on the
// connection (classifySend, classifyRead, decide).
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
	"sluice/internal/upstream"
)

// maxAttempts bounds tries per request, whatever the failures: the most retry.attempts allows
// plus the re-sends of requests that met a dead pooled connection.
const maxAttempts = config.MaxRetryAttempts + maxStaleResends

// clientCheckInterval is how often a slow upstream wait checks whether the client left.
const clientCheckInterval = 250 * time.Millisecond

// Proxy forwards requests. It is stateless apart from buffers and safe for concurrent use.
type Proxy struct {
	log           *slog.Logger
	exposeDetails atomic.Bool
	budgets       sync.Map // upstream ID -> *budget; kept across reloads
	open          sync.Map // *tunnel -> struct{}: the open tunnels
	tunnelObs     TunnelObserver
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
	// Status is the backend's response status, 0 when none was received.
	Status int
	Retry  string // the condition under which the next attempt was made, "" if none
	// Start is when the attempt began (before the connection checkout or dial); End when
	// its exchange ended, zero when it never had a connection (for tracing).
	Start, End time.Time
	// Protocol is how the gateway spoke to the target: "http1", "h2c" or "h2".
	Protocol string
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
	// Tunnel is set when the request became a tunnel (101 Switching Protocols).
	Tunnel TunnelRecord
	// Interim counts the interim (1xx) responses passed to the client.
	Interim int
	// EarlyResponse: an attempt's final response came before its request body was all sent
	// (the rest was not sent).
	EarlyResponse bool
	// DroppedRequestTrailers and DroppedResponseTrailers count the trailer fields that were
	// not forwarded: forbidden in trailers (h1.ForbiddenTrailer) or the gateway's own.
	DroppedRequestTrailers, DroppedResponseTrailers int
	// GRPCStatus is the grpc-status of the gRPC answer relayed to the client, when
	// HasGRPCStatus: the backend's, from its trailers (or its head, a trailers-only answer),
	// or the gateway's own in the trailers it ends a cut answer with (webBody.endFailed).
	// The gateway's own error answers are the server's to report
	// (server.Served.ErrorGRPCStatus).
	GRPCStatus    int32
	HasGRPCStatus bool

	// Set by the gateway's plugin chain (internal/plugin), not by the proxy:
	// ClientIP is the real client address when trusted proxies named it ("" : the peer's);
	// Consumer is the consumer an auth plugin identified; Plugin names the plugin that
	// answered or stopped the request.
	ClientIP, Consumer, Plugin string
	// AnswerReason is the reason code of a plugin's local answer that is not an error (a
	// redirect, a CORS preflight, a static response): logged as "reason", not counted as a
	// gateway error.
	AnswerReason reason.Code
	// TraceID is set by the gateway's tracing: the hex trace id of a request it records, for
	// the access log; nil when the request is not recorded.
	TraceID []byte
}

// Values of [Attempt.Protocol].
const (
	protoHTTP1 = "http1"
	protoH2C   = "h2c"
	protoH2    = "h2"
)

// noteGRPCStatus takes the grpc-status field of h, if it has a valid one (a decimal
// number), as the answer's gRPC status.
func (r *Record) noteGRPCStatus(h *h1.Header) {
	v, _ := h.Get("Grpc-Status")
	if n, ok := h1.ParseDigits(v); ok && len(v) <= 9 {
		r.setGRPCStatus(int(n))
	}
}

// setGRPCStatus takes code as the answer's gRPC status.
func (r *Record) setGRPCStatus(code int) { r.GRPCStatus, r.HasGRPCStatus = int32(code), true }

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
// the forward (with the upstream response head and body reader), the retrier, the targets
// tried, and the upstream connection in use (for the cancel hook).
type call struct {
	fwd   forward
	r     retrier
	tried [maxAttempts]*upstream.Target
	pick  upstream.Pick

	// inUse is the connection of the attempt running; the cancel hook (interrupt, bound
	// once per call) takes it and closes its socket, waking the attempt's wait.
	inUse     atomic.Pointer[connpool.Conn]
	interrupt func()
}

var calls = sync.Pool{New: func() any {
	cl := new(call)
	f := &cl.fwd
	f.armUpWrite = func() { netio.ArmWrite(f.c.NetConn(), f.rt.Write) }
	f.armUpRead = func() { netio.ArmRead(f.c.NetConn(), f.rt.Read) }
	f.watchUp = f.upstreamQuiet
	cl.interrupt = func() {
		if c := cl.inUse.Swap(nil); c != nil {
			c.Interrupt()
		}
	}
	return cl
}}

// release returns cl to the pool, dropping its references to this request.
func (cl *call) release() {
	cl.tried = [maxAttempts]*upstream.Target{}
	cl.pick = upstream.Pick{}
	cl.r = retrier{}
	cl.fwd.perRequest = perRequest{}
	cl.inUse.Store(nil)
	calls.Put(cl)
}

// Serve forwards the request of ds to rt's upstream and writes the response (or a gateway
// error) to ds. The request's context is ds.Context(): when it is canceled, Serve stops
// waiting for the upstream, does not retry, and answers with the context's cause.
func (p *Proxy) Serve(ds Downstream, rt *Route, rec *Record) { p.serve(ds, rt, rec, nil) }

func (p *Proxy) serve(ds Downstream, rt *Route, rec *Record, hooks Hooks) {
	req := ds.Request()
	ds.SetBodyLimit(rt.MaxBodyBytes)
	if lim := ds.BodyLimit(); lim > 0 && req.ContentLength > lim {
		p.fail(ds, rec, hooks, reason.New(413, reason.BodyTooLarge, "", errors.New("declared Content-Length above the limit")))
		return
	}
	cl := calls.Get().(*call)
	defer cl.release()
	fwd := &cl.fwd
	fwd.init(ds, rt, hooks)
	fwd.rec = rec
	if fwd.hasBody() {
		defer fwd.releaseBody()
		if err := fwd.readBodyPrefix(rt.bodyPrefixLimit()); err != nil {
			p.answer(ds, rec, hooks, clientBodyFailure("", err))
			return
		}
	}
	if rt.mirror != nil {
		rt.mirror.offer(fwd) // mirror.go: a copy on its own goroutine, or nothing
	}
	u := rt.Upstream
	if !u.Admit() {
		p.fail(ds, rec, hooks, reason.New(503, reason.UpstreamOverloaded, "", fmt.Errorf("upstream %q: limits.max_concurrent_requests reached", u.ID)))
		return
	}
	defer u.Release()
	// The request's cancellation interrupts the upstream connection in use, through the
	// downstream's allocation-free hook when it has one.
	ctx := ds.Context()
	if n, ok := ds.(CancelNotifier); ok {
		n.OnCancel(cl.interrupt)
		defer n.OnCancel(nil)
	} else if ctx.Done() != nil {
		defer context.AfterFunc(ctx, cl.interrupt)()
	}
	// One clock read serves the first attempt's pick, checkout and the retry budget.
	start := time.Now()
	defer func() { rec.UpstreamTime = time.Since(start) }()
	r := &cl.r
	r.init(p, ds, rt, fwd, rec, start)
	defer r.release()

	tried := &cl.tried
	for n := 0; n < maxAttempts; n++ {
		now := start
		if n > 0 {
			now = time.Now() // after a failure and a backoff
		}
		if ctx.Err() != nil {
			p.answer(ds, rec, hooks, canceled(ctx))
			return
		}
		t := u.PickInto(&cl.pick, reqInfo{fwd}, tried[:n], now)
		if t == nil {
			if n == 0 {
				p.fail(ds, rec, hooks, reason.New(503, reason.NoHealthyTarget, "", fmt.Errorf("upstream %q has no available target", u.ID)))
			} else {
				p.fail(ds, rec, hooks, reason.From(rec.Err))
			}
			return
		}
		tried[n] = t
		rec.Target = t.Addr
		res := p.attempt(ctx, cl, t, now)
		if res.err == nil {
			rec.Reason, rec.Err = "", nil
			return
		}
		rec.Reason, rec.Err = res.err.Code, res.err
		if res.ended {
			return
		}
		if res.clientGone {
			p.answer(ds, rec, hooks, res)
			return
		}
		if final := r.next(ctx, res, n); final != nil {
			p.fail(ds, rec, hooks, final)
			return
		}
	}
	p.fail(ds, rec, hooks, reason.From(rec.Err))
}

// answer ends a request with a failure res: a client that is gone gets nothing (the
// response is aborted: its connection closes and nothing more is written), anyone else the
// error.
func (p *Proxy) answer(ds Downstream, rec *Record, hooks Hooks, res result) {
	if res.clientGone {
		rec.Reason, rec.Err = res.err.Code, res.err
		rec.ClientGone = true
		ds.Abort()
		return
	}
	p.fail(ds, rec, hooks, res.err)
}

// canceled is the result for a request whose context ended: its cause when that is a
// *reason.Error (as the server's are), else a 503 naming the cancellation.
func canceled(ctx context.Context) result {
	cause := context.Cause(ctx)
	var re *reason.Error
	if !errors.As(cause, &re) {
		re = reason.New(503, reason.GatewayShutdown, "", fmt.Errorf("request canceled: %w", cause))
	}
	return result{err: re, canceled: true, clientGone: re.Status == 499}
}

// fail answers with the gateway's error e. The fields the hooks give every answer of the
// request (ErrorHooks: the plugin chain's CORS and response-headers fields) go on it as
// they would on the upstream's response, so that a browser script sees the 502, 503 or 504
// and its reason instead of a CORS failure.
func (p *Proxy) fail(ds Downstream, rec *Record, hooks Hooks, e *reason.Error) {
	rec.Reason, rec.Err = e.Code, e
	detail := ""
	if p.exposeDetails.Load() {
		detail = string(e.Code) // with the target, when there is no cause to show
		if e.Err != nil {
			detail = e.Err.Error()
		}
	}
	WriteError(ds, e, detail, hooks)
}

// WriteError writes the gateway's error e to ds with the fields that hooks (nil: none)
// give every answer of the request (ErrorHooks), when ds can add fields (FieldsErrorWriter).
func WriteError(ds Downstream, e *reason.Error, detail string, hooks Hooks) {
	if eh, ok := hooks.(ErrorHooks); ok {
		if extra := eh.ErrorFields(); extra != nil && len(extra.Fields) > 0 {
			if w, ok := ds.(FieldsErrorWriter); ok {
				w.WriteErrorFields(e, detail, extra)
				return
			}
		}
	}
	ds.WriteError(e, detail)
}

// result is the outcome of one attempt.
type result struct {
	err *reason.Error
	// cond is the retry condition this failure falls under (config.Retry* values), "" when
	// no condition covers it (a bad response, a full pool queue).
	cond string
	// notSent: provably no request byte reached the backend.
	notSent bool
	// unprocessed: an HTTP/2 stream the backend provably did not process (GOAWAY, refused).
	unprocessed bool
	reused      bool
	clientGone  bool
	clientSide  bool // the client's side failed (body too large, unreadable, too slow)
	canceled    bool // the request's context ended (client gone, forced shutdown)
	// ended: the response went out whole with the failure in it (a grpc-web trailer frame
	// naming err, grpcweb.go): it is recorded, nothing more is written.
	ended bool
	// switched: protocol auto, the target's ALPN answer sent the request to its other pool
	// before anything of it was sent (auto.go); err is nil.
	switched bool
}

// attempt makes one try on t; now is the time it starts.
func (p *Proxy) attempt(ctx context.Context, cl *call, t *upstream.Target, now time.Time) result {
	switch {
	case t.H2 == nil:
		return p.attemptH1(ctx, cl, t, now)
	case t.H2.Auto():
		return p.attemptAuto(ctx, cl, t, now) // auto.go
	}
	return p.attemptH2(ctx, cl, t, now)
}

// attemptH1 makes one try on t's HTTP/1.1 pool; now is the time it starts.
func (p *Proxy) attemptH1(ctx context.Context, cl *call, t *upstream.Target, now time.Time) result {
	rt, r, rec := cl.fwd.rt, &cl.r, cl.r.rec
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
		if ctx.Err() != nil {
			return canceled(ctx)
		}
		if t.H2 != nil && errors.Is(err, connpool.ErrNegotiatedH2) {
			return result{switched: true} // nothing was written; auto.go
		}
		re := reason.From(err)
		re.Target = t.Addr
		rec.add(Attempt{Target: t.Addr, Outcome: string(re.Code), Start: now, Protocol: protoHTTP1})
		if re.Code.TargetFault() { // a failed dial, not a full pool or a wait for it
			rt.Upstream.Done(t, upstream.Result{Failed: true})
		}
		if reason.ConnectFailure(re.Code) {
			return result{err: re, cond: config.RetryConnectFailure, notSent: true}
		}
		return result{err: re}
	}
	t.InFlight.Add(1)
	defer t.InFlight.Add(-1)
	a := rec.add(Attempt{Target: t.Addr, ConnID: c.ID, Reused: c.Reused, IdleAge: c.IdleAge, Start: now, Protocol: protoHTTP1})
	start := now
	if !c.Reused || c.Queued {
		start = time.Now() // after a dial or a wait: the balancer's latency is the exchange's
	}
	// A panic in the exchange still gives the connection back (closed), or its slot would be
	// lost to the pool for good.
	out := failed(connpool.CloseRequestError)
	defer func() { t.Pool.Release(c, out) }()
	cl.inUse.Store(c)
	var res result
	res, out = p.exchange(cl, t, c)
	if interrupted := cl.inUse.Swap(nil) == nil; interrupted || res.err != nil && ctx.Err() != nil {
		// Canceled during the exchange (the cancel hook closed c's socket): a failure was
		// the request being stopped here, not the backend's doing.
		out = failed(connpool.CloseRequestError)
		if res.err != nil {
			res = canceled(ctx)
		}
	}
	end := time.Now()
	out.End, a.End = end, end
	res.reused = c.Reused
	if res.err != nil {
		a.Outcome = string(res.err.Code)
		out.Err = res.err
	} else {
		a.Outcome = "ok"
	}
	if a.Status = cl.fwd.ds.Status(); res.cond == config.RetryStatus {
		a.Status = res.err.Status // discarded, not relayed
	}
	if res.reused && (res.cond == config.RetryResetBeforeResponse || res.cond == config.RetryResetBeforeRequest) {
		res.err.Err = explainReuse(t, c.IdleAge, res.err.Err)
	}
	if !res.clientGone && !res.clientSide && !res.canceled {
		lat := end.Sub(start)
		if rec.Tunnel.Protocol != "" {
			// A tunnel's latency is its handshake's: its lifetime (a WebSocket's hours)
			// says nothing of the target's speed, and peak EWMA would shun it for minutes.
			lat -= rec.Tunnel.Duration
		}
		rt.Upstream.Done(t, upstream.Result{Latency: lat, Failed: res.err != nil && res.err.Code.TargetFault(), Status: a.Status})
	}
	return res
}

// exchange writes the request on c, reads the response head, and streams the response.
func (p *Proxy) exchange(cl *call, t *upstream.Target, c *connpool.Conn) (result, connpool.Outcome) {
	fwd, r := &cl.fwd, &cl.r
	fwd.c, fwd.t = c, t
	fwd.armUpWrite()
	fwd.attempt = cl.r.rec.NumAttempts - 1 // recorded by attempt
	err := fwd.writeHead(c.W, t)
	switch {
	case err != nil:
	case fwd.hasBody():
		err = c.W.Flush()
	default:
		// A request without a body goes out with the first read of the response
		// (awaitResponse's Peek): one system call fewer. A failed send comes back from
		// that read as a *netio.SendError.
		err = c.FlushWithRead()
	}
	if err != nil {
		return classifySend(err, c.BytesWritten(), t.Addr), failed("")
	}
	fwd.wait = r.tryTimeout()
	fwd.headIn, fwd.early, fwd.earlyFailed, fwd.earlyRes = false, false, false, result{} // a retry starts afresh
	if fwd.hasBody() {
		if res, ok := p.sendBody(fwd, c, t); !ok {
			return res, failedBy(res)
		}
	}
	resp := &fwd.resp
	isHEAD := string(fwd.req.Method) == "HEAD"
	if !fwd.headIn { // else its final head came while the body was being sent
		if res, out, ok := awaitFinal(fwd, c, t, fwd.wait); !ok {
			return res, out
		}
	}
	if resp.Status == 101 {
		if fwd.upgrade == nil {
			return result{err: reason.New(502, reason.BadResponse, t.Addr, errors.New("101 Switching Protocols to a request that did not ask to upgrade"))}, failed(connpool.CloseProtocolError)
		}
		return p.runTunnel(cl, t, c, resp)
	}
	var res result
	var out connpool.Outcome
	if r.retryStatus(resp.Status) {
		res, out = p.discardResponse(c, t, resp, isHEAD)
	} else {
		res, out = p.relayResponse(fwd, c, t, resp, isHEAD)
	}
	if fwd.early && out.Reusable {
		// The request's body was not all sent: the connection stands inside a request.
		out.Reusable, out.Reason = false, connpool.CloseProtocolError
	}
	return res, out
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

// classifySend classifies a failed write of the request; written is how many request bytes
// the connection had accepted (Conn.BytesWritten). Only a failure before any byte was
// accepted proves that the backend did not see the request.
func classifySend(err error, written int64, target string) result {
	if isTimeout(err) {
		return result{err: reason.New(504, reason.ResponseTimeout, target, err), cond: config.RetryTimeout}
	}
	if written == 0 {
		return result{err: reason.New(502, reason.ResetBeforeSend, target, err), cond: config.RetryResetBeforeRequest, notSent: true}
	}
	return result{err: reason.New(502, reason.ResetBeforeResp, target, err), cond: config.RetryResetBeforeResponse}
}

// classifyRead classifies a failure to read the response head; read is how many bytes had
// come from the connection (Conn.BytesRead).
func classifyRead(err error, read int64, target string) result {
	var pe *h1.Error
	switch {
	case errors.As(err, &pe):
		return result{err: reason.New(502, reason.BadResponse, target, err)}
	case isTimeout(err):
		return result{err: reason.New(504, reason.ResponseTimeout, target, err), cond: config.RetryTimeout}
	case read == 0 && connpool.IsTLSAlert(err):
		// Retried like the reset it replaces: the label differs, not what is safe.
		err = fmt.Errorf("the backend refused the TLS session after the handshake (with TLS 1.3 a client certificate is verified then): %w", err)
		return result{err: reason.New(502, reason.TLSHandshake, target, err), cond: config.RetryResetBeforeResponse}
	case read == 0 && connpool.IsTLSLocalAlert(err):
		// As above: the backend read the request and may have run it. (This code is gRPC's
		// UNAVAILABLE, "not delivered"; gRPC calls go over HTTP/2, where classifyH2 labels
		// only the backend's alerts so.)
		err = fmt.Errorf("the TLS session with the backend failed before its response (a renegotiation request is refused: Sluice does not renegotiate): %w", err)
		return result{err: reason.New(502, reason.TLSHandshake, target, err), cond: config.RetryResetBeforeResponse}
	case read == 0:
		return result{err: reason.New(502, reason.ResetBeforeResp, target, err), cond: config.RetryResetBeforeResponse}
	default:
		return result{err: reason.New(502, reason.BadResponse, target, err)}
	}
}

// awaitResponse waits for the first byte of a response head until deadline (zero: none; it
// may fire up to late after it), checking now and then whether the client is still there: a
// client that left cancels the upstream request. now is the time the wait starts.
func awaitResponse(ds Downstream, now, deadline time.Time, late time.Duration, c *connpool.Conn, t *upstream.Target) (result, bool) {
	nc := c.NetConn()
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
		if se := netio.SendFailure(err); se != nil {
			return classifySend(se.Err, c.BytesWritten(), t.Addr), false
		}
		if !isTimeout(err) {
			return classifyRead(err, c.BytesRead(), t.Addr), false
		}
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			return classifyRead(err, c.BytesRead(), t.Addr), false
		}
		if ds.ClientGone() {
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

// copyBody streams the client's request body to the upstream (see sendBody).
func (p *Proxy) copyBody(fwd *forward, c *connpool.Conn, t *upstream.Target) (result, bool) {
	ds, rt, req := fwd.ds, fwd.rt, fwd.req
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	var w io.Writer = c.W
	if req.Chunked {
		fwd.cw.Reset(c.W)
		w = &fwd.cw
	}
	nc := c.NetConn()
	if _, err := w.Write(fwd.pre); err != nil {
		return classifySend(err, c.BytesWritten(), t.Addr), false
	}
	splicer := fwd.bodySplicer
	if c.Socket() == nil {
		splicer = nil
	}
	for !fwd.preEOF {
		// The rest of a large Content-Length body goes socket to socket (splice) once none
		// of it is buffered; the head and the bytes before it are written first.
		if splicer != nil && splicer.BodyToSplice() >= spliceMin {
			fwd.taken = true // the splice consumes the client's body for good
			res, spliced, ok := spliceRequestBody(splicer, fwd, c, t)
			if !ok {
				return res, false
			}
			if !spliced {
				splicer = nil
			}
		}
		if !ds.BodyPending() {
			// The next read waits for the client: what was relayed goes upstream first, so
			// that a streamed body (chunk by chunk, or a long-poll request) is not held back.
			netio.ArmWrite(nc, rt.Write)
			if err := c.W.Flush(); err != nil {
				return classifySend(err, c.BytesWritten(), t.Addr), false
			}
		}
		// Only bytes read past pre make the body unrepeatable: a body whose end comes
		// alone after pre (an HTTP/2 END_STREAM in an empty DATA frame, as most clients
		// end a body of unknown length; a last chunk sent apart) is all held, and a
		// failure before that read took nothing.
		n, rerr := ds.ReadBody(buf)
		if n > 0 {
			fwd.taken = true // the reads consume the client's body for good
			netio.ArmWrite(nc, rt.Write)
			if _, err := w.Write(buf[:n]); err != nil {
				return classifySend(err, c.BytesWritten(), t.Addr), false
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			fwd.taken = true // a failed read (a stopped wait, too) leaves the body unreadable
			return clientBodyFailure(t.Addr, rerr), false
		}
	}
	// The last client read may have waited long past the last write's deadline.
	netio.ArmWrite(nc, rt.Write)
	if req.Chunked {
		tr := ds.BodyTrailer()
		if n := p.dropTrailers(ds, tr, rt.skip, "request"); n > 0 {
			fwd.rec.DroppedRequestTrailers = n
		}
		if err := fwd.cw.Close(tr); err != nil {
			return classifySend(err, c.BytesWritten(), t.Addr), false
		}
	}
	if err := c.W.Flush(); err != nil {
		return classifySend(err, c.BytesWritten(), t.Addr), false
	}
	return result{}, true
}

// clientBodyFailure classifies a failure to read the client's request body. A failure the
// downstream explains (a *reason.Error, such as the 413 of a body over the limit) is
// answered as it is.
func clientBodyFailure(target string, err error) result {
	var re *reason.Error
	var pe *h1.Error
	switch {
	case errors.As(err, &re):
		return result{err: re, clientSide: true, clientGone: re.Status == 499}
	case isTimeout(err):
		return result{err: reason.New(408, reason.ClientTimeout, "", err), clientSide: true}
	case errors.As(err, &pe):
		return result{err: reason.New(400, reason.BadRequest, "", err), clientSide: true}
	default:
		return result{err: reason.New(400, reason.ClientBodyError, target, err), clientGone: true}
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
func spliceRequestBody(bs BodySplicer, fwd *forward, c *connpool.Conn, t *upstream.Target) (res result, spliced, ok bool) {
	fwd.armUpWrite()
	if err := c.W.Flush(); err != nil {
		return classifySend(err, c.BytesWritten(), t.Addr), true, false
	}
	s, started := bs.SpliceBodyTo(c.Socket(), fwd.armUpWrite)
	if !started {
		return result{}, false, true
	}
	c.AddWritten(s.Moved)
	switch {
	case s.ReadErr != nil:
		return clientBodyFailure(t.Addr, s.ReadErr), true, false
	case s.WriteErr != nil:
		return classifySend(s.WriteErr, c.BytesWritten(), t.Addr), true, false
	}
	return result{}, true, true
}
