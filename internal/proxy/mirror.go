package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"math"
	"sync"
	"sync/atomic"
	"unsafe"

	"sluice/internal/h1"
	"sluice/internal/reason"
)

// Mirror copies a share of one route's requests to another upstream, fire and forget
// (config.Mirror, docs/traffic.md). A copy is taken only from what the primary request
// already holds when it is forwarded: the head, and the body when all of it was read ahead
// (the body prefix that retries use), so the primary never waits for the mirror, and a copy
// runs on its own goroutine through the same proxy, pools and balancer as any request to
// the mirror's upstream, with a downstream that discards the response. Copies carry
// "X-Sluice-Mirror: 1" and are never retried (their route has retry.attempts 1: only a
// re-send that provably never reached the backend, as after a dead pooled connection).
//
// What happened to each request offered is counted by Count with one of the Mirror*
// results, or the copy's outcome: its response status class ("2xx" ... "5xx") or the
// gateway's reason code when it got no response.
type Mirror struct {
	// Route is the copies' route: the primary route's rewrites, towards the mirror's
	// upstream, with its timeouts and retries off. Required.
	Route *Route
	// Percent of requests copied, in (0, 100].
	Percent float64
	// MaxBody is the largest body copied; larger bodies, and bodies not all read ahead,
	// are not copied (MirrorBodyTooLarge).
	MaxBody int64
	// MaxConcurrent caps copies in flight; more are dropped (MirrorDropped).
	MaxConcurrent int64
	// Count is told what became of each request offered (nil: nobody). It runs on the
	// request's goroutine for the Mirror* results, on the copy's for the others.
	Count func(result string)

	proxy     *Proxy
	threshold uint64 // a request is copied when its point on the 64-bit line is below it
	next      atomic.Uint64
	inflight  atomic.Int64
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
}

// Results of mirroring a request that did not produce a copy.
const (
	MirrorSampledOut   = "sampled_out"    // not in the mirrored percentage
	MirrorDropped      = "dropped"        // max_concurrent copies were in flight
	MirrorBodyTooLarge = "body_too_large" // body above max_body_bytes, or not all read ahead
	MirrorUpgrade      = "upgrade"        // a protocol upgrade (WebSocket) is never copied
)

// mirrorHeader marks the copies, so that a backend (and its logs) can tell them apart.
const mirrorHeader = "X-Sluice-Mirror: 1\r\n"

// SetMirror makes rt copy requests as m says (nil: none). Call it before serving; the
// copies start with [Mirror.Start].
func (rt *Route) SetMirror(m *Mirror) { rt.mirror = m }

// Start makes m send its copies through p. Until then requests are not copied. Call it
// once, before the route serves; [Mirror.Close] stops it.
func (m *Mirror) Start(p *Proxy) {
	m.threshold = math.MaxUint64
	if m.Percent < 100 {
		m.threshold = uint64(m.Percent / 100 * math.MaxUint64)
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.proxy = p
}

// Mirror is the route's mirror, nil when it has none.
func (rt *Route) Mirror() *Mirror { return rt.mirror }

// Close cancels the copies in flight and waits for them to end. The gateway calls it when
// the route's generation is retired.
func (m *Mirror) Close() {
	if m.cancel == nil {
		return // never started
	}
	m.cancel()
	m.wg.Wait()
}

// InFlight is the number of copies in flight.
func (m *Mirror) InFlight() int64 { return m.inflight.Load() }

func (m *Mirror) count(result string) {
	if m.Count != nil {
		m.Count(result)
	}
}

// offer copies the request of f (after its body prefix was read) when m takes it. Points
// come from a Weyl sequence, as a traffic split's do: the percentage holds exactly over
// any long run, without random numbers. Its step is not the split's (2^64/φ): on a split
// route both sequences number the same requests, and with the same step the copies would
// be exactly the requests of one slice of the split's line (mirror 10% of a split whose
// first share has 10%: every copy that share's, none of the others'). frac(√2)·2^64
// makes the two independent (1, φ and √2 are rationally independent).
func (m *Mirror) offer(f *forward) {
	if m.proxy == nil {
		return // not started
	}
	if m.next.Add(1)*mirrorStep >= m.threshold && m.threshold != math.MaxUint64 {
		m.count(MirrorSampledOut)
		return
	}
	if f.upgrade != nil {
		m.count(MirrorUpgrade)
		return
	}
	if f.hasBody() && (!f.preEOF || int64(len(f.pre)) > m.MaxBody) {
		m.count(MirrorBodyTooLarge)
		return
	}
	if m.inflight.Add(1) > m.MaxConcurrent {
		m.inflight.Add(-1)
		m.count(MirrorDropped)
		return
	}
	c := newMirrorCopy(m.ctx, f)
	m.wg.Go(func() {
		defer m.inflight.Add(-1)
		defer c.cancel()
		var rec Record
		m.proxy.serve(c, m.Route, &rec, c)
		if rec.Reason != "" {
			m.count(string(rec.Reason))
		} else {
			m.count(statusClass(c.status))
		}
	})
}

// mirrorStep is the mirror's Weyl step, frac(√2)·2^64 (see offer).
const mirrorStep = 0x6A09E667F3BCC908

func statusClass(status int) string {
	switch status / 100 {
	case 1:
		return "1xx"
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	default:
		return "5xx"
	}
}

// mirrorCopy is one copied request: a Downstream whose request is a copy of the primary's
// (head and whole body) and whose response is discarded, and the Hooks that send the
// primary's client address and X-Forwarded-For with the mirror mark.
type mirrorCopy struct {
	ctx      context.Context
	cancel   context.CancelFunc
	req      h1.Request
	body     []byte
	read     int
	clientIP string
	xff      []byte
	id       []byte
	tls      *tls.ConnectionState
	extra    []byte // header lines from the request's MirrorHooks
	status   int
}

// mirrorHookBytes is the arena room kept for MirrorHooks' lines (a traceparent line is 70).
const mirrorHookBytes = 128

func newMirrorCopy(parent context.Context, f *forward) *mirrorCopy {
	r := f.req
	// One arena holds every byte copied (head fields, body, X-Forwarded-For, request id).
	size := len(r.Method) + len(r.Target) + len(r.Path) + len(r.Query) + len(r.Host) + len(f.xff) + len(f.clientIP)
	for _, fl := range r.Header.Fields {
		size += len(fl.Name) + len(fl.Value)
	}
	id := f.ds.RequestIDBytes()
	size += len(id)
	if f.hasBody() {
		size += len(f.pre)
	}
	mh, _ := f.hooks.(MirrorHooks)
	if mh != nil {
		size += mirrorHookBytes
	}
	a := arena(make([]byte, 0, size))
	var extra []byte
	if mh != nil { // first, into the room kept for it (more is fine: takes copy still)
		a = mh.AppendMirror(a)
		extra = a[:len(a):len(a)]
	}
	// The client address may alias the request's pooled state: it is copied too.
	c := &mirrorCopy{clientIP: a.takeString(f.clientIP), xff: a.take(f.xff), id: a.take(id), tls: f.ds.TLS(), extra: extra}
	c.ctx, c.cancel = context.WithCancel(parent)
	c.req = h1.Request{Method: a.take(r.Method), Target: a.take(r.Target), Path: a.take(r.Path),
		Query: a.take(r.Query), Minor: r.Minor, Host: a.take(r.Host)}
	c.req.Header.Fields = make([]h1.Field, len(r.Header.Fields))
	for i, fl := range r.Header.Fields {
		c.req.Header.Fields[i] = h1.Field{Name: a.take(fl.Name), Value: a.take(fl.Value)}
	}
	if f.hasBody() {
		c.body = a.take(f.pre)
		c.req.ContentLength = int64(len(c.body))
	}
	return c
}

// arena hands out copies carved from one buffer, which must have the capacity for all.
type arena []byte

// take copies b into the arena, keeping nil as nil (a nil Query means "no '?'").
func (a *arena) take(b []byte) []byte {
	if b == nil {
		return nil
	}
	start := len(*a)
	*a = append(*a, b...)
	return (*a)[start:len(*a):len(*a)]
}

// takeString copies s into the arena; the arena's bytes are never written again.
func (a *arena) takeString(s string) string {
	start := len(*a)
	*a = append(*a, s...)
	b := (*a)[start:]
	return unsafe.String(unsafe.SliceData(b), len(b))
}

var (
	_ Downstream = (*mirrorCopy)(nil)
	_ Hooks      = (*mirrorCopy)(nil)
)

func (c *mirrorCopy) Context() context.Context  { return c.ctx }
func (c *mirrorCopy) ClientIP() string          { return c.clientIP }
func (c *mirrorCopy) TLS() *tls.ConnectionState { return c.tls }
func (c *mirrorCopy) RequestIDBytes() []byte    { return c.id }
func (c *mirrorCopy) ClientGone() bool          { return false }
func (c *mirrorCopy) CloseAfter()               {}
func (c *mirrorCopy) Request() *h1.Request      { return &c.req }
func (c *mirrorCopy) SetBodyLimit(int64)        {}
func (c *mirrorCopy) BodyLimit() int64          { return 0 }
func (c *mirrorCopy) BodyPending() bool         { return true }
func (c *mirrorCopy) BodyTrailer() *h1.Header   { return nil }

func (c *mirrorCopy) ReadBody(p []byte) (int, error) {
	if c.read >= len(c.body) {
		return 0, io.EOF
	}
	n := copy(p, c.body[c.read:])
	c.read += n
	return n, nil
}

func (c *mirrorCopy) WriteHead(status int, _ []byte, _ *h1.Header, _ int64) error {
	c.status = status
	return nil
}
func (c *mirrorCopy) Write(p []byte) (int, error)          { return len(p), nil }
func (c *mirrorCopy) Flush() error                         { return nil }
func (c *mirrorCopy) Finish(*h1.Header) error              { return nil }
func (c *mirrorCopy) Abort()                               {}
func (c *mirrorCopy) WriteError(e *reason.Error, _ string) { c.status = e.Status }
func (c *mirrorCopy) Status() int                          { return c.status }

// Hooks of the copy: the primary's client address and X-Forwarded-For, and the mark.

func (c *mirrorCopy) ForwardedFor() []byte { return c.xff }
func (c *mirrorCopy) AppendUpstream(dst []byte, _ int) []byte {
	return append(append(dst, mirrorHeader...), c.extra...)
}
func (c *mirrorCopy) ResponseHead(int, *h1.Header) {}

// bodyPrefixLimit is how much request body is read ahead: what retries keep, or more when
// the route's mirror copies larger bodies (a copy needs the whole body in hand).
func (rt *Route) bodyPrefixLimit() int64 {
	if rt.mirror != nil {
		return max(rt.retry.bufferBody, rt.mirror.MaxBody)
	}
	return rt.retry.bufferBody
}
