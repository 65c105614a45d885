package proxy

import (
	"sluice/internal/h1"
	"sluice/internal/reason"
)

// Hooks extend the forwarding of one request, for what stands in front of the proxy: the
// gateway's real-client-IP resolution and its plugin chain (internal/plugin). Serve runs
// without them; ServeHooks with them. Each method must not block and must not allocate on
// the common path: they run on the zero-allocation request path.
type Hooks interface {
	// ClientIP is the request's client address (without port) as the gateway established
	// it (trusted proxies, PROXY protocol); it replaces ds.ClientIP() for balancing.
	ClientIP() string
	// ForwardedFor is the X-Forwarded-For value sent upstream, in place of the proxy's own
	// (the client's fields with the peer appended). nil or empty: no such field is sent.
	ForwardedFor() []byte
	// AppendUpstream appends request header lines ("Name: value\r\n") to dst for the
	// attempt numbered attempt (from 0), written after the request's own fields.
	AppendUpstream(dst []byte, attempt int) []byte
	// ResponseHead may edit the upstream's final response head (fields h) before it is
	// written to the client.
	ResponseHead(status int, h *h1.Header)
}

// ServeHooks is Serve with hooks h (nil: none, as Serve).
func (p *Proxy) ServeHooks(ds Downstream, rt *Route, rec *Record, h Hooks) {
	p.serve(ds, rt, rec, h)
}

// FieldsErrorWriter is an optional Downstream capability: WriteError with extra response
// fields (a 401's WWW-Authenticate, a 429's Retry-After, CORS fields), which the plugin
// chain needs. A downstream without it gets WriteError, without the fields.
type FieldsErrorWriter interface {
	// WriteErrorFields is WriteError with the fields of extra (nil: none) added to the
	// head; fields the error head sets itself (Content-Type, X-Sluice-Error, X-Request-Id)
	// are not taken from extra.
	WriteErrorFields(e *reason.Error, detail string, extra *h1.Header)
}

// ErrorHooks is an optional extension of Hooks: the fields that every answer to the
// request carries, whoever makes it (the plugin chain's AddResponseField fields: CORS,
// response-headers), for the proxy's own error answers (413, 502, 503, 504). The upstream's
// responses get them through ResponseHead.
type ErrorHooks interface {
	// ErrorFields returns those fields (nil or empty: none); the proxy adds them to its
	// error answer with FieldsErrorWriter, except those the error head sets itself. It
	// must not allocate.
	ErrorFields() *h1.Header
}

// MirrorHooks is an optional extension of Hooks: header lines for a mirror copy of the
// request (mirror.go). A copy is sent with its own hooks, not the request's, so what the
// request's AppendUpstream adds per attempt (X-Consumer-Name, the gateway's traceparent)
// would be missing from it, while the client's fields it replaces are not sent either.
type MirrorHooks interface {
	// AppendMirror appends to dst the header lines (each ending in CRLF) the copy carries.
	// It runs on the request's goroutine when the copy is made; the copy keeps the bytes.
	AppendMirror(dst []byte) []byte
}

// BodyHooks is an optional extension of Hooks: the response body phase (internal/plugin's
// ResponseBodyFilter). Every attempt path that relays an upstream response body (HTTP/1.1
// in response.go, and any other upstream protocol) must ask for it after ResponseHead and
// run the body through it; hooks without it, or a nil BodyFilter, leave the relay exactly
// as it is without hooks (splice and the zero-allocation path).
type BodyHooks interface {
	// ResponseBody runs after ResponseHead for a final response that has a body (not for a
	// HEAD request, 1xx, 204 or 304). It returns the filter that changes this response's
	// body, or nil when none does. With a filter, the relay drops the upstream's
	// Content-Length, frames the body as h1.LengthUnknown (chunked for HTTP/1.1 clients,
	// close-delimited for HTTP/1.0) and never splices.
	ResponseBody(status int, h *h1.Header) BodyFilter
}

// BodyFilter transforms one response body as it streams.
type BodyFilter interface {
	// FilterBody is given the body's bytes in order, one piece p per upstream read (p is
	// valid only during the call), and appends its output to dst, returning it; the output
	// may be longer or shorter than p, or empty (bytes held back, e.g. a partial match).
	// end is true once, on the last call, after the upstream body ended cleanly (p may be
	// empty): the filter appends whatever it held back and any final bytes. It is not
	// called with end when the upstream body broke off. It must not block.
	FilterBody(dst, p []byte, end bool) []byte
}
