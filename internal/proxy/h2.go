package proxy

// The attempt path for upstreams spoken to over HTTP/2 (protocol h2, h2c): the request goes
// as one stream on the target's h2pool.Pool instead of over the HTTP/1.1 codec. The head is
// the one the HTTP/1.1 path writes (rewrites, forwarded fields, request id), re-read into an
// http.Request; the body streams from the downstream while the response may already stream
// back (full duplex, as gRPC bidi calls need); response trailers pass through ds.Finish.
//
// Facts for the retry rules: h2pool.ErrUnprocessed (above a GOAWAY's last-stream-id,
// REFUSED_STREAM) is "provably not processed" and is re-sent whatever the method, if the
// body is held, unless the try timeout is what ended it (a timeout, counted, that sent
// nothing: classifyH2); any other failure after the stream started is possibly processed
// and retried only under the route's rules (decide.go). grpc-timeout bounds the call, every
// attempt told what is left of it (grpcdeadline.go).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/h1"
	"sluice/internal/h2pool"
	"sluice/internal/reason"
	"sluice/internal/upstream"
)

// DuplexBody is an optional Downstream capability: ReadBody may run on another goroutine
// while the response is written (HTTP/2 streams). Without it, an HTTP/2 upstream's response
// head waits until the request body was read to its end.
type DuplexBody interface {
	DuplexBody() bool
}

// errH2AttemptTimeout is the cause of an h2 attempt's context when its time ran out. It is
// a context.DeadlineExceeded, so that the pool reports a dial it cut as timed out
// (upstream_connect_timeout, reason.DialTimedOut), not as refused.
var errH2AttemptTimeout = fmt.Errorf("upstream HTTP/2 attempt timed out: %w", context.DeadlineExceeded)

// h2Try is what an HTTP/2 attempt keeps beyond its call (the library holds the body, the
// pool the attempt), in one allocation.
type h2Try struct {
	a    h2pool.Attempt
	body h2Body
}

// attemptH2 makes one try of the request on t's HTTP/2 pool; now is when it starts.
func (p *Proxy) attemptH2(ctx context.Context, cl *call, t *upstream.Target, now time.Time) result {
	fwd, r, rec := &cl.fwd, &cl.r, cl.r.rec
	fwd.attempt = rec.NumAttempts // the index rec.add gives this attempt below
	// The head wait is bounded by the try timeout, the whole attempt by grpc-timeout.
	actx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	try := &h2Try{a: h2pool.Attempt{Fresh: r.fresh}, body: h2Body{p: p, fwd: fwd, done: make(chan struct{})}}
	a, body := &try.a, &try.body
	defer func() { // the client's trailer fields not forwarded (h2trailers.go), whatever came of the attempt
		if n := body.dropped.Load(); n > 0 {
			fwd.rec.DroppedRequestTrailers = int(n)
		}
	}()
	req, err := fwd.h2Request(actx, t) // h2head.go
	if err != nil {
		return result{err: reason.New(400, reason.BadRequest, "", err), clientSide: true}
	}
	var deadline time.Time // grpc-timeout's, zero when none
	wait := r.tryTimeout()
	body.wait = wait
	callEnd := r.callDeadline(now) // grpcdeadline.go
	if !callEnd.IsZero() {
		left := time.Until(callEnd)
		if left <= 0 {
			return result{err: callTimedOut(nil), notSent: true} // no attempt: nothing was sent
		}
		client, _ := fwd.req.Header.Get("Grpc-Timeout")
		n := fwd.req.Header.Count("Grpc-Timeout")
		setGRPCTimeout(req.Header, client, n, left) // the backend is told what is left of the call
		deadline = callEnd.Add(-left / 10)          // a backend's own reset at the deadline comes a little early
		wait = min(wait, left)
	}
	// One timer: the head wait (the try timeout, or grpc-timeout when sooner), then re-armed
	// for the rest of a call with grpc-timeout. While the request body streams, the head
	// wait stands still as long as the attempt waits for the client's next bytes
	// (h2Body.headWait).
	tm := time.AfterFunc(wait, func() { cancel(errH2AttemptTimeout) })
	defer tm.Stop()
	body.tm, body.callEnd = tm, callEnd
	if fwd.hasBody() {
		req.Body = body
		if fwd.web == webNone {
			requestTrailers(req, body) // h2trailers.go
		}
	} else {
		body.finish()
	}
	if fwd.web != webNone {
		toGRPCRequest(req, fwd.web, req.Body) // grpcweb.go
	}
	t.InFlight.Add(1)
	defer t.InFlight.Add(-1)
	resp, err := t.H2.RoundTrip(req, a)
	body.headDone()
	if err != nil && errors.Is(err, h2pool.ErrNegotiatedHTTP1) {
		return p.negotiatedHTTP1(cl, t, body, now, err) // auto.go
	}
	proto := protoH2C
	if t.H2.TLS() {
		proto = protoH2
	}
	at := rec.add(Attempt{Target: t.Addr, ConnID: a.ConnID, Reused: a.Reused, IdleAge: a.IdleAge, Start: now, Protocol: proto})
	if err != nil {
		taken, berr := body.stop()
		fwd.taken = fwd.taken || taken
		if !deadline.IsZero() && !time.Now().Before(deadline) {
			cancel(errH2AttemptTimeout) // the backend ended the call at its deadline (grpc-go resets it)
		}
		res := p.classifyH2(ctx, actx, err, a, berr, t)
		at.Outcome = string(res.err.Code)
		at.End = time.Now()
		// A stream the backend provably did not process (REFUSED_STREAM, above a GOAWAY: its
		// stream limit, a graceful restart) or a failure that is not the target's
		// (reason.Code.TargetFault: a pool with no stream free in time) says nothing of the
		// target either: counted, a request's refused streams ejected a healthy target before
		// its re-send on a new connection was made.
		if !res.clientGone && !res.clientSide && !res.canceled && !res.unprocessed && res.err.Code.TargetFault() {
			rt := fwd.rt
			rt.Upstream.Done(t, upstream.Result{Latency: at.End.Sub(now), Failed: true})
		}
		return res
	}
	defer t.H2.Done(a)
	// Deferred before the Close below, so run after it: no read of the client's body is in
	// progress once the attempt returns (and the server may pool the downstream stream).
	// Close waits for the client's body writer, but not past the request's end (a client
	// that reset its stream); the read it may be in is woken then (the stream's reset ends
	// it), and stop waits for it and makes later reads end at once.
	defer body.stop()
	defer resp.Body.Close()
	at.Status = resp.StatusCode
	if r.pol.retriesStatus(resp.StatusCode) {
		// A response that may be discarded for a retry: the body's reads end first, so that
		// whether it can be sent again is known for sure.
		taken, _ := body.stop()
		fwd.taken = fwd.taken || taken
	}
	if r.retryStatus(resp.StatusCode) {
		at.Outcome = string(reason.UpstreamStatus)
		return result{err: reason.New(resp.StatusCode, reason.UpstreamStatus, t.Addr, fmt.Errorf("retryable status %d", resp.StatusCode)), cond: config.RetryStatus}
	}
	if _, duplex := fwd.ds.(DuplexBody); !duplex {
		select { // the downstream cannot read and write at once
		case <-body.done:
		case <-actx.Done():
		}
	}
	var res result
	if berr := body.clientErr(); berr != nil {
		res = clientBodyFailure(t.Addr, berr) // nothing was relayed yet: the client's answer
	} else {
		res = p.relayH2(fwd, t, resp, actx, body)
	}
	// The response is complete. A client still sending its body (a gRPC call the server
	// ended first) may hold a read in progress: it is not waited for (it ends when the
	// client's stream does), but no read starts from now on.
	body.abandoned.Store(true)
	if berr := body.clientErr(); res.err != nil && !res.clientGone && !res.clientSide && berr != nil {
		res = clientBodyFailure(t.Addr, berr) // the upstream stream failed because the client's body did
	}
	if res.err != nil && ctx.Err() != nil {
		// The request ended while the body was relayed (the client reset its stream, a
		// forced shutdown): whichever read failed first, the response's or the client's
		// body's (a forced shutdown closes the client's socket too), it failed because of
		// that, and the request's cause is the answer, as on the HTTP/1.1 path (attemptH1).
		res = canceled(ctx)
	}
	at.Outcome = "ok"
	if res.err != nil {
		at.Outcome = string(res.err.Code)
	}
	at.End = time.Now()
	// As on the HTTP/1.1 path, what the client did (went away, sent a bad body) says nothing
	// about the target: counted, clients leaving mid-response ejected healthy targets.
	if !res.clientGone && !res.clientSide && !res.canceled {
		fwd.rt.Upstream.Done(t, upstream.Result{Latency: at.End.Sub(now), Failed: res.err != nil && res.err.Code.TargetFault(), Status: resp.StatusCode})
	}
	return res
}

// classifyH2 turns a failed stream into a result with the facts the retry rules need.
func (p *Proxy) classifyH2(ctx, actx context.Context, err error, a *h2pool.Attempt, bodyErr error, t *upstream.Target) result {
	var re *reason.Error
	switch {
	case ctx.Err() != nil:
		return canceled(ctx)
	case bodyErr != nil:
		return clientBodyFailure(t.Addr, bodyErr)
	case errors.Is(err, h2pool.ErrNotHTTP2):
		// The target answered the preface in HTTP/1.x (an h2c upstream pointed at an
		// HTTP/1.1 server): nothing was processed, and another target may speak HTTP/2, as
		// when an auto target chose HTTP/1.1 for a gRPC call (auto.go).
		return result{err: reason.New(502, reason.H2Unavailable, t.Addr, err), cond: config.RetryConnectFailure, notSent: true}
	case a.Unprocessed && errors.Is(context.Cause(actx), errH2AttemptTimeout):
		// The try timed out before the stream's HEADERS got out whole (the connection's
		// writes were stuck on a backend that stopped reading): as on HTTP/1.1, a request
		// not written in time is a timeout, and the try timeout bounds this try; but nothing
		// was processed, so a retry under `timeout` may send it again whatever its method.
		// Not a free re-send: each would wait out the try timeout again, uncounted.
		return result{err: reason.New(504, reason.ResponseTimeout, t.Addr, fmt.Errorf("HTTP/2 stream not written within the try timeout: %w", err)), cond: config.RetryTimeout, notSent: true}
	case a.Unprocessed:
		return result{err: reason.New(502, reason.ResetBeforeSend, t.Addr, fmt.Errorf("HTTP/2 stream: %w", err)), cond: config.RetryResetBeforeRequest, notSent: true, unprocessed: true}
	case a.ConnID == 0 && errors.As(err, &re):
		// No connection was had (dial, TLS, pool full): nothing was sent.
		res := result{err: re, notSent: true}
		if reason.ConnectFailure(re.Code) {
			res.cond = config.RetryConnectFailure
		}
		return res
	case errors.Is(err, h2pool.ErrMalformedResponse):
		// The backend answered, malformed: it processed the request. As on HTTP/1.1
		// (classifyRead), a bad response, under no retry condition.
		return result{err: reason.New(502, reason.BadResponse, t.Addr, fmt.Errorf("HTTP/2 stream: %w", err))}
	case errors.Is(err, h2pool.ErrProtocol):
		// The backend broke the protocol in its frames (on the connection: a frame on a
		// server-initiated stream, a PUSH_PROMISE; on this stream: a window overrun): a bad
		// response, but this stream's answer may not have begun, so it is retried as a
		// connection lost before the response is (streams above a GOAWAY's last-stream-id
		// came as unprocessed, above).
		return result{err: reason.New(502, reason.BadResponse, t.Addr, fmt.Errorf("HTTP/2 stream: %w", err)), cond: config.RetryResetBeforeResponse}
	case errors.Is(context.Cause(actx), errH2AttemptTimeout):
		return result{err: reason.New(504, reason.ResponseTimeout, t.Addr, err), cond: config.RetryTimeout}
	case !a.Settled && connpool.IsTLSAlert(err):
		// The backend ended the TLS session with an alert before this stream's response (a
		// TLS 1.3 backend refuses a client certificate after the handshake, when the
		// preface and streams may be out): labeled as on HTTP/1.1 (classifyRead), with the
		// rules of the connection loss it is. Only before the backend's SETTINGS: after
		// them it had accepted the session, and an alert (a record of ours that failed its
		// check) may come after it ran the stream, as may one of Sluice's side; this code is
		// gRPC's UNAVAILABLE (reason.GRPCStatus), "not delivered".
		return result{err: reason.New(502, reason.TLSHandshake, t.Addr, fmt.Errorf("HTTP/2 stream: the backend refused the TLS session: %w", err)), cond: config.RetryResetBeforeResponse}
	}
	return result{err: reason.New(502, reason.ResetBeforeResp, t.Addr, fmt.Errorf("HTTP/2 stream: %w", err)), cond: config.RetryResetBeforeResponse}
}

// relayH2 writes resp's head, streams its body (each read flushed: gRPC messages must not
// wait in a buffer) and ends with its trailers.
func (p *Proxy) relayH2(fwd *forward, t *upstream.Target, resp *http.Response, actx context.Context, body *h2Body) result {
	ds := fwd.ds
	hs := new(relayHeads) // the head and the trailers, in one allocation (not pooled: a plugin may keep what a filter saw)
	h := &hs.head
	id := ds.RequestIDBytes()
	growFor(h, resp.Header, 4, len("X-Request-Id")+len(id)) // 4: the id, room for a plugin's fields
	for name, vs := range resp.Header {
		for _, v := range vs {
			h.Add(name, v)
		}
	}
	h.RemoveHopByHop()
	if !h.Has("X-Request-Id") {
		h.Add("X-Request-Id", string(id))
	}
	framing := resp.ContentLength
	switch {
	case resp.StatusCode == 204 || resp.StatusCode == 304 || string(fwd.req.Method) == "HEAD":
		framing = h1.LengthNone
	case framing < 0:
		framing = h1.LengthUnknown
	}
	var wb *webBody
	// grpcweb.go: a gRPC answer's trailers go in the body, whose length changes. An answer
	// that is not gRPC (a proxy's HTML 502 page, a plain-text error) is no grpc-web stream:
	// it passes as it is, unencoded even for -text, and the client maps its HTTP status.
	ct, isGRPC := h.Get("Content-Type")
	isGRPC = isGRPC && h1.HasMediaType(ct, ctGRPC)
	// The call's gRPC status, for the access log: only for a gRPC (or grpc-web) request
	// (grpc-go answers any other with 415 and a grpc-status of its own).
	noteStatus := isGRPC && fwd.wantsH2()
	switch {
	case isGRPC && fwd.web != webNone:
		wb = &hs.web
		wb.mode = fwd.web
		h.Set("Content-Type", webContentType(string(ct), fwd.web))
		if framing >= 0 {
			framing = h1.LengthUnknown
		}
	case isGRPC && fwd.duplexCall():
		// A gRPC call's answer to an HTTP/2 client: its frames are followed (mode webNone,
		// nothing re-encoded), so that a body the backend cuts off between two messages
		// ends with trailers of the gateway's, a status naming the reason (endFailed).
		wb = &hs.web
	}
	var bf BodyFilter
	if fwd.hooks != nil {
		fwd.hooks.ResponseHead(resp.StatusCode, h)
		// The body phase (hooks.go), as on the HTTP/1.1 relay: a filter that changes this
		// body makes its length unknown.
		if bh, ok := fwd.hooks.(BodyHooks); ok && framing != h1.LengthNone {
			if bf = bh.ResponseBody(resp.StatusCode, h); bf != nil {
				framing = h1.LengthUnknown
			}
		}
	}
	h.Del("Content-Length") // after the hooks, which may read it: framing says it
	if err := ds.WriteHead(resp.StatusCode, nil, h, framing); err != nil {
		return result{err: reason.New(499, reason.ClientBodyError, t.Addr, err), clientGone: true}
	}
	if noteStatus {
		fwd.rec.noteGRPCStatus(h) // a trailers-only answer: its status is in its head
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	var filtered *[]byte
	if bf != nil {
		filtered = filterBufs.Get().(*[]byte)
		defer filterBufs.Put(filtered)
	}
	for {
		n, err := resp.Body.Read(*bp)
		out := (*bp)[:n]
		if bf != nil && (n > 0 || err == io.EOF) {
			*filtered = bf.FilterBody((*filtered)[:0], out, err == io.EOF)
			out = *filtered
		}
		if wb != nil && len(out) > 0 { // a filter's last bytes may come with n == 0
			out = wb.add(out)
		}
		if len(out) > 0 {
			if _, werr := ds.Write(out); werr != nil {
				return result{err: reason.New(499, reason.ClientBodyError, t.Addr, werr), clientGone: true}
			}
			if werr := ds.Flush(); werr != nil {
				return result{err: reason.New(499, reason.ClientBodyError, t.Addr, werr), clientGone: true}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			if berr := body.clientErr(); berr != nil {
				// The client's body failed (past max_body_bytes, a read timeout, a bad -text
				// group) and took the upstream stream with it: the answer is the client's
				// failure, also in the status a gRPC client is given (not a reset of the
				// backend's, UNKNOWN).
				res := clientBodyFailure(t.Addr, berr)
				if wb != nil && !res.clientGone && actx.Err() == nil && wb.endFailed(ds, res.err) {
					res.ended = true
					fwd.rec.setGRPCStatus(reason.GRPCStatus(res.err)) // endFailed's trailers' status
				} else {
					ds.Abort()
				}
				return res
			}
			timedOut := errors.Is(context.Cause(actx), errH2AttemptTimeout)
			e := reason.New(502, bodyFailureCode(err, timedOut), t.Addr, fmt.Errorf("HTTP/2 response body: %w", err))
			// grpcweb.go: cut between two messages, the backend's doing or the deadline's (not
			// a request canceled by its client or a forced shutdown: nobody to tell).
			if wb != nil && (timedOut || actx.Err() == nil) && wb.endFailed(ds, e) {
				fwd.rec.setGRPCStatus(reason.GRPCStatus(e))
				return result{err: e, ended: true}
			}
			ds.Abort()
			return result{err: e}
		}
	}
	tr := &hs.trailer
	growFor(tr, resp.Trailer, 0, 0)
	for name, vs := range resp.Trailer {
		for _, v := range vs {
			tr.Add(name, v)
		}
	}
	if n := p.dropTrailers(ds, tr, fwd.rt.skip, "response"); n > 0 {
		fwd.rec.DroppedResponseTrailers = n
	}
	var trp *h1.Header
	switch {
	case wb != nil && wb.mode != webNone: // the trailers as the body's last frame
		if rest := wb.end(tr); len(rest) > 0 {
			if _, err := ds.Write(rest); err != nil {
				return result{err: reason.New(499, reason.ClientBodyError, t.Addr, err), clientGone: true}
			}
		}
	case len(tr.Fields) > 0:
		trp = tr
	}
	if err := ds.Finish(trp); err != nil {
		return result{err: reason.New(499, reason.ClientBodyError, t.Addr, err), clientGone: true}
	}
	if noteStatus {
		fwd.rec.noteGRPCStatus(tr) // the trailers' status, else the head's (trailers-only)
	}
	return result{}
}

// bodyFailureCode is the reason of an HTTP/2 response body that broke off after its head,
// named as the HTTP/1.1 relay names it (bodyReadFailure): a body the backend sent malformed
// (a length it does not keep, trailers without END_STREAM), or frames that broke the
// protocol (h2pool.ErrProtocol), is a bad response; the attempt's time running out is a timeout; a stream
// the backend reset (RST_STREAM) or a connection lost mid-body is a reset during the
// response (issue #16).
func bodyFailureCode(err error, timedOut bool) reason.Code {
	switch {
	case timedOut:
		return reason.ResponseTimeout
	case errors.Is(err, h2pool.ErrMalformedResponse), errors.Is(err, h2pool.ErrProtocol):
		return reason.BadResponse
	}
	return reason.ResetDuringResp
}

// relayHeads are the response head and trailers relayH2 makes from the library's maps, and
// the frame tracking of a gRPC answer (grpcweb.go).
type relayHeads struct {
	head, trailer h1.Header
	web           webBody
}

// duplexCall reports whether the request is a call that needs HTTP/2 (gRPC or grpc-web;
// wantsH2) from a client that reads the answer while it sends (DuplexBody: an HTTP/2
// stream), which can also be sent trailers after a body however it ends.
func (f *forward) duplexCall() bool {
	d, ok := f.ds.(DuplexBody)
	return ok && d.DuplexBody() && f.wantsH2()
}

// growFor makes room in h for m's fields and extra more of extraBytes bytes in all: one
// allocation for the fields and one for the bytes (a gRPC answer's head and trailers, filled
// field by field, took 9 allocations).
func growFor(h *h1.Header, m http.Header, extra, extraBytes int) {
	n, size := extra, extraBytes
	for name, vs := range m {
		n += len(vs)
		for _, v := range vs {
			size += len(name) + len(v)
		}
	}
	h.Grow(n, size)
}

// h2Body is the request body of one HTTP/2 attempt: the held prefix, then the rest from the
// downstream. The HTTP/2 client reads it on its own goroutine; stop ends that before the
// proxy judges the attempt, so that a dead attempt can never consume body bytes that a
// re-send would then miss (mu is held across the downstream read).
type h2Body struct {
	fwd     *forward
	mu      sync.Mutex
	off     int
	err     error // the downstream's read failure
	taken   bool  // bytes past the held prefix were read from the downstream
	stopped bool
	// abandoned: the response ended; reads from now on end at once (see attemptH2).
	abandoned atomic.Bool
	// failed is err once set, readable while a read holds mu (clientErr).
	failed atomic.Pointer[bodyFailure]
	done   chan struct{} // closed at the body's end or failure, or when the attempt stops
	once   sync.Once
	// decoded: read through a decoder (grpc-web-text, grpcweb.go), which signals the body's
	// end itself (ended).
	decoded bool
	// trailer is the request's Trailer map, filled from the client's trailer section when
	// its body ends (nil: the request sends none; h2trailers.go); p drops what may not go.
	trailer http.Header
	p       *Proxy
	// dropped counts the client's trailer fields not forwarded (read after the attempt).
	dropped atomic.Int32

	// The attempt's timer (attemptH2): wait is the try timeout, callEnd grpc-timeout's end
	// (zero: none); headIn, once the response head came (or the stream failed), under tmu.
	tm      *time.Timer
	wait    time.Duration
	callEnd time.Time
	tmu     sync.Mutex
	headIn  atomic.Bool
}

// headWait moves the head wait around a read of the client's body: while the read waits
// (waiting), the try timeout does not run, only grpc-timeout does; when it returned, the
// try timeout starts again. So the head wait counts from the body's last bytes, as on the
// HTTP/1.1 path (whose head wait starts when the body was sent), and a backend that stops
// taking the body is still given up on after the try timeout. Before, it ran from the
// attempt's start: a client-streaming call, or an upload, longer than timeouts.read ended
// in upstream_timeout while its bytes flowed, and a bidi call whose client is quiet until
// the backend answers ended after it. Nothing happens once the head came.
func (b *h2Body) headWait(waiting bool) {
	if b.tm == nil || b.headIn.Load() {
		return
	}
	b.tmu.Lock()
	defer b.tmu.Unlock()
	if b.headIn.Load() {
		return
	}
	b.armLocked(!waiting)
}

// armLocked sets the attempt's timer: to the try timeout when the head wait runs (head),
// and in any case to no later than grpc-timeout's end; stopped when neither bounds it.
func (b *h2Body) armLocked(head bool) {
	switch {
	case head && b.callEnd.IsZero():
		b.tm.Reset(b.wait)
	case head:
		b.tm.Reset(min(b.wait, time.Until(b.callEnd)))
	case b.callEnd.IsZero():
		b.tm.Stop()
	default:
		b.tm.Reset(time.Until(b.callEnd))
	}
}

// headDone ends the head wait (the head came, or the stream failed): the timer runs on only
// to grpc-timeout's end.
func (b *h2Body) headDone() {
	b.tmu.Lock()
	defer b.tmu.Unlock()
	b.headIn.Store(true)
	b.armLocked(false)
}

// bodyFailure is how the client's body failed (h2Body.failed).
type bodyFailure struct{ err error }

// errBodyStopped ends the reads of an attempt that is over.
var errBodyStopped = errors.New("request body of a finished HTTP/2 attempt")

func (b *h2Body) Read(p []byte) (int, error) {
	if b.abandoned.Load() {
		return 0, errBodyStopped
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	f := b.fwd
	switch {
	case b.stopped:
		return 0, errBodyStopped
	case b.off < len(f.pre):
		n := copy(p, f.pre[b.off:])
		b.off += n
		if b.off == len(f.pre) && f.preEOF {
			// The whole body was held: its last bytes come with io.EOF, so that the HTTP/2
			// client sends them in a DATA frame with END_STREAM rather than following them
			// with an empty one (a write and a frame fewer per gRPC unary call).
			b.ended()
			return n, io.EOF
		}
		return n, nil
	case f.preEOF:
		b.ended()
		return 0, io.EOF
	}
	b.headWait(true)
	n, err := f.ds.ReadBody(p)
	// What has come already goes with it, the body's end included: the HTTP/2 client then
	// ends the stream with the last DATA frame rather than an empty one of its own (a gRPC
	// unary call whose DATA came after its HEADERS went upstream: readBodyPrefix).
	for err == nil && n < len(p) && f.ds.BodyPending() {
		m, rerr := f.ds.ReadBody(p[n:])
		n, err = n+m, rerr
		if m == 0 && rerr == nil {
			break
		}
	}
	b.headWait(false)
	if !b.taken && b.hold(p[:n], err) {
		// Held: a re-send can send it again.
	} else if n > 0 || err != nil && err != io.EOF {
		// Only bytes read past the prefix, or a failed read, make the body unrepeatable: an
		// end that comes alone after it (END_STREAM in an empty DATA frame) leaves it whole.
		b.taken = true
	}
	if err == io.EOF {
		b.fillTrailer()
		b.ended()
	} else if err != nil {
		b.setErr(err)
		b.finish()
	}
	return n, err
}

// hold adds p, just read from the client, to the held prefix when it fits (with err, io.EOF
// when the body ended there), so that a re-send (a stream the backend refused, a gRPC call
// that went upstream before its body came: readBodyPrefix) can send it again, and reports
// whether it did. Under b.mu; the attempts of a request run one after another.
func (b *h2Body) hold(p []byte, err error) bool {
	f := b.fwd
	if err != nil && err != io.EOF || int64(len(f.pre)+len(p)) > f.preLimit {
		return false
	}
	f.pre = append(f.pre, p...)
	b.off = len(f.pre)
	f.preEOF = err == io.EOF
	return true
}

// setErr records the client's body failure err, unless one was recorded (under b.mu).
func (b *h2Body) setErr(err error) {
	if b.err == nil {
		b.err = err
		b.failed.Store(&bodyFailure{err})
	}
}

// clientErr is the client's body failure, nil when none; unlike stop it does not wait for
// a read in progress.
func (b *h2Body) clientErr() error {
	if f := b.failed.Load(); f != nil {
		return f.err
	}
	return nil
}

// stop ends the attempt's reads (waiting for one in progress) and reports whether the
// downstream's body was read past the held prefix, and how its read failed, if it did.
func (b *h2Body) stop() (taken bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.stopped = true
	b.finish()
	return b.taken, b.err
}

func (b *h2Body) finish() { b.once.Do(func() { close(b.done) }) }

// ended signals the end of the client's body, read whole, unless a decoder reads it
// (decoded): the decoder signals it once it judged the last bytes, which may have come with
// the end (finish, or fail for bytes that do not decode). Signalled here, an HTTP/1.1
// client's answer waiting for the end (attemptH2) could be chosen before the decoder saw a
// bad grpc-web-text group: the backend's 200 went out instead of the client's 400.
func (b *h2Body) ended() {
	if !b.decoded {
		b.finish()
	}
}

// fail records err as the client's failure to send its body (a grpc-web-text body that is
// not base64, grpcweb.go), unless a read already failed.
func (b *h2Body) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.setErr(err)
	b.finish()
}

func (b *h2Body) Close() error { b.finish(); return nil }

// Held reports whether the whole body is held in memory, so that reading it to its end does
// not wait for the client: the HTTP/2 client then sends it in the write of the request's
// HEADERS (h2pool, client.go).
func (b *h2Body) Held() bool { return b.fwd.preEOF }
