package plugin

import (
	"context"
	"crypto/tls"
	"errors"
	"net/netip"
	"unsafe"

	"sluice/internal/h1"
	"sluice/internal/proxy"
	"sluice/internal/reason"
	"sluice/internal/router"
)

// MaxSlots bounds the plugins of one route's chain (global + upstream + route): each
// instance owns one per-request [Slot].
const MaxSlots = 32

// Slot is a plugin instance's index into the per-request state ([Request.Slot]). Every
// instance has one, given by [Build.Slot].
type Slot uint8

// SlotValue is one instance's per-request state: a number and a value. Both are zero when
// the request starts. Storing a pointer in V does not allocate; storing a non-pointer may.
type SlotValue struct {
	N int64
	V any
}

// errAnswered is what Answer returns: the request was answered locally.
var errAnswered = errors.New("plugin: answered locally")

// Request is one request as the plugins see it, from routing to the access log. It is
// pooled and reused: nothing may keep it, or any view it returns, past the request. One
// goroutine uses it at a time (the connection's).
type Request struct {
	ds    proxy.Downstream
	in    *router.Input
	chain *Chain

	clientIP  netip.Addr
	clientStr string
	forwarded []byte // X-Forwarded-For to send upstream

	consumer *Consumer
	slots    [MaxSlots]SlotValue

	respFields Header // added to the response (AddResponseField)
	upFields   Header // scratch of UpstreamFilter, per attempt

	pending    *reason.Error // the first NoCredentials of the auth stage
	challenges Header        // their WWW-Authenticate fields
	answer     Answer
	answerBody []byte // the body of a local answer (AnswerWithBody)
	answered   bool
	err        *reason.Error // what stop rendered, nil for a local answer

	bodyOn  uint64    // bit i: chain.body[i] changes this response's body (BodyStart)
	bodyTmp [2][]byte // between body filters, used in turn; kept across requests
}

// Answer is how the chain answered a request itself, for metrics and logs.
type Answer struct {
	// Plugin is the name of the plugin that answered or stopped the request.
	Plugin string
	// Status is the status sent.
	Status int
	// Code is the reason code.
	Code reason.Code
}

// Context is the request's context: canceled when the client leaves or the gateway shuts
// down. A filter that blocks derives its deadline from it.
func (r *Request) Context() context.Context { return r.ds.Context() }

// Method, Host, Path and Query are the request's, as received (views, valid during the
// request; Query without '?', "" when none).
func (r *Request) Method() string { return r.in.Method }

// Host is the Host header or authority as received.
func (r *Request) Host() string { return r.in.Host }

// Path is the request path without the query, as received.
func (r *Request) Path() string { return r.in.Path }

// Query is the raw query without '?', "" when there is none.
func (r *Request) Query() string { return r.in.Query }

// Header is the request's header section. Filters may edit it (Del, Add, Set); the edited
// fields are what is forwarded.
func (r *Request) Header() *Header { return &r.ds.Request().Header }

// TLS is the client connection's TLS state, nil over plain TCP.
func (r *Request) TLS() *tls.ConnectionState { return r.ds.TLS() }

// ClientIP is the real client address: the peer, or what a trusted proxy said of the client
// (X-Forwarded-For, PROXY protocol) when the listener trusts the peer.
func (r *Request) ClientIP() netip.Addr { return r.clientIP }

// RouteID is the matched route's id.
func (r *Request) RouteID() string { return r.chain.RouteID }

// Consumer is the consumer an auth filter identified, nil when none did (yet).
func (r *Request) Consumer() *Consumer { return r.consumer }

// SetConsumer records the consumer an auth filter identified. The first one set wins for
// the rest of the auth stage: later auth filters do not run.
func (r *Request) SetConsumer(c *Consumer) { r.consumer = c }

// Slot returns the per-request state of the instance that owns s.
func (r *Request) Slot(s Slot) *SlotValue { return &r.slots[s] }

// AddResponseField adds a field to the response the client gets, whatever it is: the
// upstream's (after the ResponseFilters ran), an error or a local answer. Add copies.
func (r *Request) AddResponseField(name, value string) { r.respFields.Add(name, value) }

// AddResponseFieldBytes is AddResponseField with a value that is a view (a request field's
// value, such as the Origin echoed by CORS): Add copies it, without allocating.
func (r *Request) AddResponseFieldBytes(name string, value []byte) {
	r.respFields.Add(name, unsafeString(value))
}

// Answer answers the request locally with status and no body (a CORS preflight's 204),
// with the fields added by AddResponseField. code is the reason counted in metrics and
// logged. A RequestFilter returns what Answer returns.
func (r *Request) Answer(status int, code reason.Code) error {
	r.answer = Answer{Status: status, Code: code}
	return errAnswered
}

// NoCredentials is what an auth filter (StageAuth) returns when the request carries none of
// its credentials: e (a 401) and challenge (a WWW-Authenticate value; "" for none) are kept,
// and the next auth filter runs. When the auth stage ends with no consumer identified, the
// request is stopped with the first such e, and every challenge kept. Bad credentials are
// not "none": add the challenge with AddResponseField and return their error itself.
func (r *Request) NoCredentials(e *reason.Error, challenge string) error {
	if r.pending == nil {
		r.pending = e
	}
	if challenge != "" {
		r.challenges.Add("WWW-Authenticate", challenge)
	}
	return nil
}

// RemoveQueryParam removes every argument named name from the query forwarded upstream (a
// key-auth key), editing the request's buffer in place: no allocation. It reports whether
// any was removed. Query() returns the edited query after it.
func (r *Request) RemoveQueryParam(name string) bool {
	req := r.ds.Request()
	q := req.Query
	out := q[:0]
	removed := false
	for len(q) > 0 {
		var arg []byte
		if i := indexByte(q, '&'); i >= 0 {
			arg, q = q[:i], q[i+1:]
		} else {
			arg, q = q, nil
		}
		key := arg
		if i := indexByte(arg, '='); i >= 0 {
			key = arg[:i]
		}
		if string(key) == name {
			removed = true
			continue
		}
		if len(out) > 0 {
			out = append(out, '&')
		}
		out = append(out, arg...) // copy moves left within the same buffer
	}
	if !removed {
		return false
	}
	if len(out) == 0 {
		req.Query = nil
	} else {
		req.Query = out
	}
	r.in.Query = unsafeString(req.Query)
	return true
}

func indexByte(b []byte, c byte) int {
	for i := range b {
		if b[i] == c {
			return i
		}
	}
	return -1
}

// QueryParam returns the value of the first query argument named name, raw (not
// percent-decoded), and whether it is present.
func (r *Request) QueryParam(name string) (string, bool) {
	q := r.in.Query
	for len(q) > 0 {
		arg := q
		if i := indexString(q, '&'); i >= 0 {
			arg, q = q[:i], q[i+1:]
		} else {
			q = ""
		}
		k, v := arg, ""
		if i := indexString(arg, '='); i >= 0 {
			k, v = arg[:i], arg[i+1:]
		}
		if k == name {
			return v, true
		}
	}
	return "", false
}

func indexString(s string, c byte) int {
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			return i
		}
	}
	return -1
}

// AnswerOf returns how the chain answered the request, and whether it did.
func (r *Request) AnswerOf() (Answer, bool) { return r.answer, r.answered }

// Hooks returns r as the proxy's per-request hooks. The value holds one pointer: passing it
// as an interface does not allocate.
func (r *Request) Hooks() proxy.Hooks { return hooks{r} }

// hooks implements proxy.Hooks for a Request.
type hooks struct{ r *Request }

var _ proxy.Hooks = hooks{}

func (h hooks) ClientIP() string { return h.r.clientStr }

func (h hooks) ForwardedFor() []byte { return h.r.forwarded }

// AppendUpstream runs the UpstreamFilters for an attempt.
func (h hooks) AppendUpstream(dst []byte, attempt int) []byte {
	r := h.r
	if r.consumer != nil {
		dst = append(dst, "X-Consumer-Name: "...)
		dst = append(dst, r.consumer.Name...)
		dst = append(dst, "\r\n"...)
	}
	if r.chain == nil || len(r.chain.upstream) == 0 {
		return dst
	}
	r.upFields.Reset()
	for _, e := range r.chain.upstream {
		e.up.Upstream(r, &r.upFields, attempt)
	}
	if r.upFields.Validate() != nil {
		return dst // a filter's value would inject header lines: send none of them
	}
	return r.upFields.AppendTo(dst)
}

var _ proxy.MirrorHooks = hooks{}

// AppendMirror gives a mirror copy of the request what each attempt gets from
// AppendUpstream (X-Consumer-Name, the UpstreamFilters' fields): the copy is one attempt
// of its own, numbered 0.
func (h hooks) AppendMirror(dst []byte) []byte { return h.AppendUpstream(dst, 0) }

// ResponseHead runs the ResponseFilters, then appends the fields added with
// AddResponseField (they point into r's buffer, which outlives the response head).
func (h hooks) ResponseHead(status int, hd *h1.Header) {
	r := h.r
	if r.chain != nil {
		for _, e := range r.chain.response {
			e.resp.Response(r, status, hd)
		}
	}
	hd.Fields = append(hd.Fields, r.respFields.Fields...)
}

var _ proxy.ErrorHooks = hooks{}

// ErrorFields gives the proxy's own error answers (a 502, a 504 after the retries) the
// fields added with AddResponseField, as ResponseHead gives them to the upstream's
// response: a route's CORS fields are on every answer, so a browser script can read it.
func (h hooks) ErrorFields() *h1.Header { return &h.r.respFields }

var _ proxy.BodyHooks = hooks{}

// ResponseBody runs the ResponseBodyFilters' BodyStart; it returns h itself as the body
// filter when one of them changes this body, nil otherwise (the relay is then untouched).
func (h hooks) ResponseBody(status int, hd *h1.Header) proxy.BodyFilter {
	r := h.r
	if r.chain == nil || len(r.chain.body) == 0 {
		return nil
	}
	r.bodyOn = 0
	for i, e := range r.chain.body {
		if e.body.BodyStart(r, status, hd) {
			r.bodyOn |= 1 << i
		}
	}
	if r.bodyOn == 0 {
		return nil
	}
	return h
}

var _ proxy.BodyFilter = hooks{}

// FilterBody runs the body filters that BodyStart turned on, in config order, each one's
// output the next one's input.
func (h hooks) FilterBody(dst, p []byte, end bool) []byte {
	r := h.r
	in := p
	var last int
	for i := range r.chain.body {
		if r.bodyOn&(1<<i) != 0 {
			last = i
		}
	}
	turn := 0
	for i, e := range r.chain.body {
		if r.bodyOn&(1<<i) == 0 {
			continue
		}
		if i == last {
			return e.body.Body(r, dst, in, end)
		}
		// An intermediate output goes to the scratch buffer that is not the input.
		out := e.body.Body(r, r.bodyTmp[turn][:0], in, end)
		r.bodyTmp[turn], in = out, out
		turn ^= 1
	}
	return dst
}

// unsafeString returns b as a string without copying; it must not outlive b's contents.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
