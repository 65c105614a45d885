package gateway

import (
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync/atomic"
	"time"

	"sluice/internal/config"
	"sluice/internal/h1"
	"sluice/internal/proxy"
	"sluice/internal/router"
	"sluice/internal/server"
	"sluice/internal/tracing"
)

// Tracing on the request path (docs/tracing.md, docs/design.md "Tracing without the SDK on
// the request path"). With no tracing block the only cost is one atomic load per request.
// With one, every request's traceparent is parsed and replaced by the gateway's own, and
// sampling is decided from the inbound flags or the trace id, in this file, without the
// OpenTelemetry SDK and without allocating. Only a recorded request allocates: its
// tracing.Request, handed to the tracer's export goroutine, which builds the SDK spans.

// maxAttempts is how many attempts a Record holds.
const maxAttempts = len(proxy.Record{}.Attempts)

// tracingState is the gateway's tracer; nil when the config has no tracing block.
type tracingState struct {
	cur atomic.Pointer[tracing.Tracer]
	cfg *config.Tracing // of cur; under Gateway.mu
}

// prepare builds the tracer of cfg when its tracing block changed. commit swaps it in and
// shuts the replaced one down in the background (flushing what it queued); abort throws
// the new one away (the reload failed). An unchanged block keeps the running tracer, its
// queue and its collector connection.
func (ts *tracingState) prepare(cfg *config.Config, obs tracing.Observer, log *slog.Logger) (commit, abort func(), err error) {
	nop := func() {}
	if reflect.DeepEqual(cfg.Tracing, ts.cfg) {
		return nop, nop, nil
	}
	var next *tracing.Tracer
	if cfg.Tracing != nil {
		if next, err = tracing.New(cfg.Tracing, obs, log); err != nil {
			return nil, nil, fmt.Errorf("tracing: %w", err)
		}
	}
	commit = func() {
		ts.cfg = cfg.Tracing
		if old := ts.cur.Swap(next); old != nil {
			go shutdownTracer(old, 30*time.Second)
		}
	}
	abort = func() {
		if next != nil {
			go shutdownTracer(next, time.Second)
		}
	}
	return commit, abort, nil
}

// shutdown flushes and stops the tracer (Gateway.Shutdown), bounded by ctx.
func (ts *tracingState) shutdown(ctx context.Context) {
	if t := ts.cur.Swap(nil); t != nil {
		t.Shutdown(ctx)
	}
}

func shutdownTracer(t *tracing.Tracer, grace time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	t.Shutdown(ctx)
}

// traceState is the tracing state of one request (part of the pooled reqState).
type traceState struct {
	tracer    *tracing.Tracer // nil: tracing off
	sampled   bool
	hasParent bool
	parent    tracing.Parent
	traceID   tracing.TraceID
	span      tracing.SpanID // the gateway's server span
	attempts  [maxAttempts]tracing.SpanID
	hex       [32]byte
	inner     proxy.Hooks // the plugin chain's hooks, wrapped by tracedHooks
}

// begin reads the request's trace context (h), decides whether it is recorded, and takes
// the client's traceparent (and a tracestate that cannot stand without it) out of the
// fields to forward: the upstream gets the gateway's own. It allocates nothing.
func (ts *traceState) begin(t *tracing.Tracer, h *h1.Header, rec *proxy.Record) {
	ts.tracer = t
	if t == nil {
		return
	}
	var tp []byte
	parents, states, stateOK := 0, 0, true
	for i := range h.Fields {
		f := &h.Fields[i]
		switch {
		case h1.EqualFold(f.Name, "traceparent"):
			parents++
			tp = f.Value
		case h1.EqualFold(f.Name, "tracestate"):
			states++
			stateOK = stateOK && tracing.ValidTracestate(f.Value)
		}
	}
	// Two traceparent fields are no valid context (W3C Trace Context §3.2: one value).
	if parents == 1 {
		ts.parent, ts.hasParent = tracing.ParseTraceparent(tp)
	}
	if ts.hasParent {
		ts.traceID = ts.parent.TraceID
	} else {
		ts.traceID = tracing.NewTraceID()
	}
	ts.sampled = t.Sampler().Sample(ts.traceID, ts.parent, ts.hasParent)
	ts.span = tracing.NewSpanID()
	if parents > 0 {
		h.Del("traceparent")
	}
	// tracestate belongs to the trace of the traceparent it came with (§3.3): without a
	// valid one, or malformed, it is not passed on.
	if states > 0 && (!ts.hasParent || !stateOK) {
		h.Del("tracestate")
	}
	if ts.sampled {
		hex.Encode(ts.hex[:], ts.traceID[:])
		rec.TraceID = ts.hex[:]
	}
}

// hooks returns the proxy hooks for the request: inner itself with tracing off, else inner
// wrapped to send the traceparent.
func (ts *traceState) hooks(inner proxy.Hooks) proxy.Hooks {
	if ts.tracer == nil {
		return inner
	}
	ts.inner = inner
	return tracedHooks{ts}
}

func (ts *traceState) end() {
	if ts.tracer != nil {
		*ts = traceState{}
	}
}

// tracedHooks adds the gateway's traceparent to each attempt's request head. It holds one
// pointer: passing it as an interface does not allocate.
type tracedHooks struct{ ts *traceState }

var (
	_ proxy.Hooks       = tracedHooks{}
	_ proxy.BodyHooks   = tracedHooks{}
	_ proxy.MirrorHooks = tracedHooks{}
	_ proxy.ErrorHooks  = tracedHooks{}
)

func (h tracedHooks) ClientIP() string     { return h.ts.inner.ClientIP() }
func (h tracedHooks) ForwardedFor() []byte { return h.ts.inner.ForwardedFor() }

// AppendUpstream sends, for a recorded request, a new span id per attempt (the parent of
// what the upstream records, and the id of the attempt's span); for one that is not
// recorded, the gateway's span id with the sampled flag off.
func (h tracedHooks) AppendUpstream(dst []byte, attempt int) []byte {
	ts := h.ts
	dst = ts.inner.AppendUpstream(dst, attempt)
	id := ts.span
	if ts.sampled && attempt >= 0 && attempt < maxAttempts {
		id = tracing.NewSpanID()
		ts.attempts[attempt] = id
	}
	dst = append(dst, "traceparent: "...)
	dst = tracing.AppendTraceparent(dst, ts.traceID, id, ts.sampled)
	return append(dst, "\r\n"...)
}

// AppendMirror gives a mirror copy of the request the inner hooks' lines and the gateway's
// traceparent: the copy is made from the request after begin took the client's out (its
// tracestate stays), and it is sent with the mirror's own hooks, not with these. Its
// parent is the gateway's span.
func (h tracedHooks) AppendMirror(dst []byte) []byte {
	ts := h.ts
	if mh, ok := ts.inner.(proxy.MirrorHooks); ok {
		dst = mh.AppendMirror(dst)
	}
	dst = append(dst, "traceparent: "...)
	dst = tracing.AppendTraceparent(dst, ts.traceID, ts.span, ts.sampled)
	return append(dst, "\r\n"...)
}

func (h tracedHooks) ResponseHead(status int, hd *h1.Header) { h.ts.inner.ResponseHead(status, hd) }

func (h tracedHooks) ErrorFields() *h1.Header {
	if eh, ok := h.ts.inner.(proxy.ErrorHooks); ok {
		return eh.ErrorFields()
	}
	return nil
}

func (h tracedHooks) ResponseBody(status int, hd *h1.Header) proxy.BodyFilter {
	if bh, ok := h.ts.inner.(proxy.BodyHooks); ok {
		return bh.ResponseBody(status, hd)
	}
	return nil
}

// finishTrace hands a recorded request's spans to the tracer. The strings that alias the
// request's buffers are copied: the export goroutine reads them later.
func finishTrace(ts *traceState, ex downstream, in *router.Input, routeID, upstreamID string, rec *proxy.Record) {
	if ts.tracer == nil || !ts.sampled {
		return
	}
	status := ex.Status()
	if rec.ClientGone {
		status = 499
	}
	r := &tracing.Request{
		TraceID: ts.traceID, SpanID: ts.span, Start: ex.StartTime(), End: time.Now(),
		Method: strings.Clone(in.Method), Host: strings.Clone(in.Host), Path: strings.Clone(in.Path),
		ClientIP: strings.Clone(clientIP(ex, rec)), RequestID: string(ex.RequestIDBytes()),
		Protocol: clientProtocol(ex), Route: routeID, Upstream: upstreamID, Status: status,
		Reason: string(rec.Reason), Attempts: make([]tracing.Attempt, rec.NumAttempts),
	}
	if ts.hasParent {
		r.Parent = ts.parent.SpanID
	}
	for i := range r.Attempts {
		a := &rec.Attempts[i]
		id := ts.attempts[i]
		if id.IsZero() { // no request head was written (a failed connect)
			id = tracing.NewSpanID()
		}
		r.Attempts[i] = tracing.Attempt{SpanID: id, Start: a.Start, End: a.End, Target: a.Target, ConnID: a.ConnID,
			Reused: a.Reused, IdleAge: a.IdleAge, Outcome: a.Outcome, Status: a.Status, Protocol: a.Protocol}
		if i > 0 {
			r.Attempts[i].RetryCause = rec.Attempts[i-1].Retry
		}
	}
	ts.tracer.Submit(r)
}

// clientProtocol is the client's HTTP version.
func clientProtocol(ex downstream) string {
	if _, ok := ex.(*server.Stream); ok {
		return "2"
	}
	if ex.Request().Minor == 0 {
		return "1.0"
	}
	return "1.1"
}
