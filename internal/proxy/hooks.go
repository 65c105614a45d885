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
