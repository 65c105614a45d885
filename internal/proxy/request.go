package proxy

import (
	"bufio"
	"bytes"
	"io"
	"strconv"
	"sync"
	"time"

	"sluice/internal/connpool"
	"sluice/internal/h1"
	"sluice/internal/upstream"
)

// forward is the part of the upstream request head that is the same for every attempt.
type forward struct {
	// perRequest is zeroed for each request (init); the fields below it are kept: buffers and
	// callbacks bound once per pooled forward.
	perRequest

	xff []byte

	// armUpWrite and armUpRead arm the write and read timeouts of c, the attempt's upstream
	// connection. They are bound once, because a closure made per request and handed to a
	// splice (through an interface) would be allocated every time. watchUp is bound to
	// upstreamQuiet (early.go) for the watch of the request body's waits.
	armUpWrite, armUpRead func()
	watchUp               func() bool

	// cw chunks the request body when it is chunked; here rather than on sendBody's stack,
	// where passing it as an io.Writer would move it to the heap for every request.
	cw h1.ChunkedWriter

	// resp and body are the upstream response head and body reader, reused across requests.
	resp h1.Response
	body h1.BodyReader
}

// perRequest is the state of forward that belongs to one request.
type perRequest struct {
	ds       Downstream
	req      *h1.Request // ds.Request()
	rt       *Route
	rec      *Record
	path     string // rewritten path (without query); "" means the client's path unchanged
	teTrail  bool
	web      int // grpc-web mode (grpcweb.go); webNone unless the route translates grpc-web
	clientIP string
	hooks    Hooks // nil: none (hooks.go)
	// attempt is the index in rec.Attempts of the attempt whose head writeHead writes (the
	// HTTP/2 path writes it before the attempt is recorded, HTTP/1.1 after).
	attempt int

	// pre holds the first bytes of the request body, read before any upstream is contacted:
	// a malformed chunked body is refused before anything is forwarded, and a body that fits
	// entirely (preEOF) can be sent again on a retry.
	pre    []byte
	preBuf *[]byte
	preEOF bool
	// preLimit is the most pre may hold: an HTTP/2 attempt adds the bytes it reads from the
	// client to pre while they fit (h2Body.hold).
	preLimit int64
	// taken: an attempt began reading the body past pre, so only pre could be sent again.
	taken bool

	// upgrade is the request's Upgrade value when it asks for a protocol its route forwards
	// (WebSocket) and has no body; nil otherwise (the Upgrade field is then dropped as
	// hop-by-hop and the request goes as a plain one).
	upgrade []byte

	// bodySplicer is ds when it can splice the request body, else nil.
	bodySplicer BodySplicer
	// interim is ds when it can send interim (1xx) responses, else nil.
	interim InterimWriter

	// The attempt's upstream connection and target, and how long it waits for the final
	// response head (for the watch of the request body's waits, which reads an early
	// response: see early.go).
	c        *connpool.Conn
	t        *upstream.Target
	wait     time.Duration
	watching bool // upstreamQuiet is reading the upstream (it must not run again inside)
	// headIn: the final response head (in resp) came while the request body was sent.
	// early: ... and the rest of the body was not sent for it. earlyFailed: the upstream
	// failed or closed while the body was sent, as earlyRes says.
	headIn, early, earlyFailed bool
	earlyRes                   result
}

// bodyPrefixSize is how much request body is read ahead, and so the largest body that can be
// re-sent on a retry.
const bodyPrefixSize = 64 << 10

var prefixBufs = sync.Pool{New: func() any { b := make([]byte, bodyPrefixSize); return &b }}

// readBodyPrefix reads up to limit bytes of the request body before any upstream is
// contacted. A body declared with a Content-Length within the limit is read in full, so it can
// be re-sent on a retry; otherwise only what has already arrived is taken (waiting just for
// the first bytes), so a slowly streamed body is not held back.
func (f *forward) readBodyPrefix(limit int64) error {
	if limit <= 0 {
		return nil
	}
	f.preBuf = prefixBufs.Get().(*[]byte)
	f.preLimit = limit
	buf := *f.preBuf
	cl := f.req.ContentLength
	whole := cl > 0 && cl <= limit
	// A gRPC call on an HTTP/2 stream may send nothing until the backend spoke (a bidi
	// stream whose server sends first): waiting for its first bytes here would hold its
	// HEADERS back for ever. Its attempt holds what it reads instead (h2Body.hold). A mirror
	// still waits: it copies only a body held whole before the attempt.
	first := !f.streamsFirst()
	n := 0
	for int64(n) < limit && (first && n == 0 || whole || f.ds.BodyPending()) {
		if n == len(buf) {
			buf = append(buf, make([]byte, min(int64(len(buf)), limit-int64(n)))...)
		}
		m, err := f.ds.ReadBody(buf[n:min(int64(len(buf)), limit)])
		n += m
		if err == io.EOF {
			f.preEOF = true
			break
		}
		if err != nil {
			return err
		}
	}
	f.pre = buf[:n]
	if !f.preEOF && cl >= 0 && int64(n) == cl {
		f.preEOF = true
	}
	return nil
}

// streamsFirst reports whether the request goes upstream before any of its body came: a
// gRPC call (or grpc-web) from a client that can read the answer while it sends (an HTTP/2
// stream), on a route without a mirror.
func (f *forward) streamsFirst() bool { return f.rt.mirror == nil && f.duplexCall() }

func (f *forward) releaseBody() {
	if f.preBuf != nil {
		prefixBufs.Put(f.preBuf)
		f.preBuf, f.pre = nil, nil
	}
}

// replayable reports whether the request can be sent again: it has no body, all of its body
// is held in pre, or no attempt has read any of it past pre yet (a connect failure, or a
// dead pooled connection found while writing the head, leaves a large body untouched).
func (f *forward) replayable() bool {
	return !f.hasBody() || f.preEOF || !f.taken
}

// hasBody reports whether the request has a body (chunked, or a declared length above 0).
func (f *forward) hasBody() bool { return f.req.Chunked || f.req.ContentLength > 0 }

// init prepares f for a request, keeping the buffers of its previous use.
func (f *forward) init(ds Downstream, rt *Route, hooks Hooks) {
	f.perRequest = perRequest{ds: ds, req: ds.Request(), rt: rt, clientIP: ds.ClientIP(), hooks: hooks}
	f.xff = f.xff[:0]
	if hooks != nil {
		f.clientIP = hooks.ClientIP()
	}
	f.bodySplicer, _ = ds.(BodySplicer)
	f.interim, _ = ds.(InterimWriter)
	h := &f.req.Header
	// Only the first element of Upgrade is judged and forwarded (so "websocket, h2c" offers
	// the backend no h2c), and an HTTP/1.0 request's Upgrade is ignored (RFC 9110 §7.8).
	if v, ok := h.Get("Upgrade"); ok && f.req.Minor >= 1 && h.HasToken("Connection", "upgrade") && !f.hasBody() {
		if first := upgradeElement(v); rt.tunnel.allows(upgradeProtocol(first)) {
			f.upgrade = first
		}
	}
	if te, ok := h.Get("TE"); ok && bytes.Contains(bytes.ToLower(te), []byte("trailers")) {
		f.teTrail = true
	}
	if rt.grpcWeb {
		if ct, ok := h.Get("Content-Type"); ok {
			f.web = grpcWebMode(ct)
		}
	}
	for _, fl := range h.Fields {
		if hooks != nil {
			break // the hooks say what is forwarded
		}
		if h1.EqualFold(fl.Name, "X-Forwarded-For") {
			if len(f.xff) > 0 {
				f.xff = append(f.xff, ", "...)
			}
			f.xff = append(f.xff, fl.Value...)
		}
	}
	if hooks != nil {
		f.xff = append(f.xff, hooks.ForwardedFor()...)
	} else {
		if len(f.xff) > 0 {
			f.xff = append(f.xff, ", "...)
		}
		f.xff = append(f.xff, f.clientIP...)
	}
	h.RemoveHopByHop()
	if rt.rewrites() {
		f.path = rt.rewritePath(string(f.req.Path))
	}
}

// skipHeader lists client fields the gateway replaces or handles itself.
var skipHeader = []string{"Host", "Content-Length", "X-Forwarded-For", "X-Forwarded-Proto",
	"X-Forwarded-Host", "X-Request-Id", "Expect"}

// writeHead writes the upstream request line and header fields to w.
func (f *forward) writeHead(w *bufio.Writer, t *upstream.Target) error {
	req := f.req
	w.Write(req.Method)
	w.WriteByte(' ')
	if f.path != "" {
		w.WriteString(f.path)
	} else {
		w.Write(req.Path)
	}
	if req.Query != nil {
		w.WriteByte('?')
		w.Write(req.Query)
	}
	w.WriteString(" HTTP/1.1\r\nHost: ")
	mode := f.rt.hostMode
	if mode == HostClient && len(req.Host) == 0 {
		mode = HostTarget // an HTTP/1.0 request without Host: HTTP/1.1 needs one (RFC 9112 §3.2)
	}
	switch mode {
	case HostTarget:
		if t.Name != "" && t.Name[0] != '_' {
			w.WriteString(t.Name) // the configured host:port, not the address DNS resolved it to
		} else {
			w.WriteString(t.Addr)
		}
	case HostFixed:
		w.WriteString(f.rt.hostValue)
	default:
		w.Write(req.Host)
	}
	w.WriteString("\r\n")
fields:
	for _, fl := range req.Header.Fields {
		for _, s := range f.rt.skip {
			if h1.EqualFold(fl.Name, s) {
				continue fields
			}
		}
		w.Write(fl.Name)
		w.WriteString(": ")
		w.Write(fl.Value)
		w.WriteString("\r\n")
	}
	for _, h := range f.rt.setHeaders {
		writeField(w, h.name, h.value)
	}
	for _, h := range f.rt.addHeaders {
		writeField(w, h.name, h.value)
	}
	if f.hooks != nil {
		w.Write(f.hooks.AppendUpstream(w.AvailableBuffer(), f.attempt)) // no allocation when it fits
	}
	if len(f.xff) > 0 {
		w.WriteString("X-Forwarded-For: ")
		w.Write(f.xff)
		w.WriteString("\r\n")
	}
	if f.ds.TLS() != nil {
		w.WriteString("X-Forwarded-Proto: https")
	} else {
		w.WriteString("X-Forwarded-Proto: http")
	}
	if len(req.Host) > 0 { // none to pass on from an HTTP/1.0 request without Host
		w.WriteString("\r\nX-Forwarded-Host: ")
		w.Write(req.Host)
	}
	w.WriteString("\r\nX-Request-Id: ")
	w.Write(f.ds.RequestIDBytes())
	w.WriteString("\r\n")
	switch {
	case req.Chunked:
		w.WriteString("Transfer-Encoding: chunked\r\n")
	case req.ContentLength > 0:
		w.WriteString("Content-Length: ")
		w.Write(strconv.AppendInt(w.AvailableBuffer(), req.ContentLength, 10)) // no allocation: the digits go in w's buffer
		w.WriteString("\r\n")
	case methodExpectsBody(req.Method):
		w.WriteString("Content-Length: 0\r\n")
	}
	if f.teTrail {
		w.WriteString("TE: trailers\r\n")
	}
	switch {
	case f.upgrade != nil:
		w.WriteString("Connection: Upgrade\r\nUpgrade: ")
		w.Write(f.upgrade)
		w.WriteString("\r\n")
	case !t.Pool.KeepAlive():
		w.WriteString("Connection: close\r\n")
	}
	_, err := w.WriteString("\r\n")
	return err
}

func writeField(w *bufio.Writer, name, value string) {
	w.WriteString(name)
	w.WriteString(": ")
	w.WriteString(value)
	w.WriteString("\r\n")
}

// methodExpectsBody reports methods whose empty body should be stated explicitly
// (RFC 9110 §8.6: a user agent SHOULD send Content-Length for them).
func methodExpectsBody(m []byte) bool {
	switch string(m) {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}
