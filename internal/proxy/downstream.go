package proxy

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"time"

	"sluice/internal/h1"
	"sluice/internal/netio"
	"sluice/internal/reason"
)

// Downstream is the client side of one request, as the proxy needs it: the request head and
// body, the response head and body, and the request's life. The HTTP/1.1 exchange
// (server.Exchange) implements it; a TLS connection or an HTTP/2 stream stands in front of
// the proxy the same way. A Downstream is used by one goroutine at a time, except for the
// cancellation of its Context.
//
// Failures that a Downstream's methods return may be *reason.Error values (a body above the
// limit is a 413 request_body_too_large); the proxy answers with them as they are.
type Downstream interface {
	RequestSide
	ResponseSide

	// Context is the request's context. The server cancels it when the client is gone or
	// the shutdown grace period ends, with a *reason.Error cause that says which; the proxy
	// then stops waiting for the upstream, does not retry, and answers with the cause.
	Context() context.Context
	// ClientIP is the client's address without the port.
	ClientIP() string
	// TLS is the client connection's TLS state, nil over plain TCP.
	TLS() *tls.ConnectionState
	// RequestIDBytes is the request's id (the client's X-Request-Id when sane, else a new
	// one), valid until the exchange ends.
	RequestIDBytes() []byte
	// ClientGone reports whether the client has gone (reset its connection), without
	// consuming anything it sent; a client that only half-closed is still there. A
	// downstream that cannot tell answers false.
	ClientGone() bool
	// CloseAfter makes the client connection close after this response.
	CloseAfter()
}

// RequestSide is the request as the client sent it.
type RequestSide interface {
	// Request is the parsed request head. The proxy edits its header in place (hop-by-hop
	// fields are removed before forwarding).
	Request() *h1.Request
	// SetBodyLimit lowers the request body limit to n for this request (0 keeps the
	// downstream's own).
	SetBodyLimit(n int64)
	// BodyLimit is the body limit in force (0: none).
	BodyLimit() int64
	// ReadBody reads the request body (io.EOF at its end). Reading past the limit fails
	// with a 413 *reason.Error.
	ReadBody(p []byte) (int, error)
	// BodyPending reports whether a ReadBody would return without waiting for the client
	// (body bytes, the body's end or an error are at hand). Before a ReadBody that would
	// wait, the proxy sends upstream what it relayed so far.
	BodyPending() bool
	// BodyTrailer is the trailer section of a chunked body, once it was read to its end.
	BodyTrailer() *h1.Header
}

// ResponseSide is where the response goes.
type ResponseSide interface {
	// WriteHead writes the status line and fields h, framed by contentLength: a length
	// >= 0, h1.LengthUnknown (the downstream delimits the body itself) or h1.LengthNone.
	WriteHead(status int, reasonPhrase []byte, h *h1.Header, contentLength int64) error
	// Write writes response body bytes; they may be buffered until Flush.
	Write(p []byte) (int, error)
	// Flush sends buffered response bytes to the client now.
	Flush() error
	// Finish ends the body with trailer fields (nil for none) where the framing has an end.
	Finish(trailer *h1.Header) error
	// Abort marks a response whose head went out as broken: the client learns that the body
	// is incomplete (HTTP/1.1 closes the connection). Before the head it means "no answer":
	// nothing is written and the connection closes (the client is gone).
	Abort()
	// WriteError answers with a gateway-generated error (reason header and JSON body);
	// detail, when not "", goes into the body. After the head went out it aborts instead.
	WriteError(e *reason.Error, detail string)
	// Status is the status written, 0 before WriteHead.
	Status() int
}

// BodySplicer is an optional Downstream capability: the rest of the request body can move
// from the client's socket to an upstream socket without passing through user memory.
type BodySplicer interface {
	// BodyToSplice is how many body bytes SpliceBodyTo would move now; 0 when it cannot.
	BodyToSplice() int64
	// SpliceBodyTo moves BodyToSplice bytes to dst; ok is false, and nothing was moved,
	// when it could not start. armWrite runs before each wait on dst.
	SpliceBodyTo(dst *netio.Conn, armWrite func()) (s netio.Spliced, ok bool)
}

// BodyWatcher is an optional Downstream capability: the waits for request body bytes
// (ReadBody, SpliceBodyTo) can be watched, so that the proxy sees an upstream's early
// response while the client is slow to send (see early.go).
type BodyWatcher interface {
	// WatchBody makes every wait for body bytes end after a step (first, doubling up to max)
	// and run f: true keeps waiting, false fails the read, and the rest of the body is
	// abandoned (the client connection closes after the response). A nil f removes it. A
	// downstream that cannot watch its waits ignores it.
	WatchBody(f func() bool, first, max time.Duration)
}

// ResponseSplicer is an optional Downstream capability: n bytes of a Content-Length response
// body can move from an upstream socket to the client's without passing through user memory.
type ResponseSplicer interface {
	// SpliceFrom moves the next n body bytes from src; ok is false, and nothing was moved,
	// when it could not start. armRead runs before each wait on src.
	SpliceFrom(src *netio.Conn, n int64, armRead func()) (s netio.Spliced, ok bool)
}

// InterimWriter is an optional Downstream capability: interim (1xx) responses reach the
// client before the final one, as a proxy must pass them on (RFC 9110 §15.2).
type InterimWriter interface {
	// WriteInterim sends the interim response status with fields h to the client now
	// (flushed). It is not the final head: Status stays 0, and WriteHead or WriteError
	// follow. sent is false, and nothing was written, when the client cannot take one
	// (HTTP/1.0), the status is not 1xx or is 101, or the final head went out.
	WriteInterim(status int, reasonPhrase []byte, h *h1.Header) (sent bool, err error)
}

// Tunneler is an optional Downstream capability: after a 101 Switching Protocols head, the
// client connection carries another protocol (WebSocket) and is handed over whole.
type Tunneler interface {
	// Tunnel sends the response head written so far and returns the client connection and
	// a reader of what the client sent past the request (bytes already buffered first).
	// The downstream closes the connection once the handler returns and serves nothing
	// more on it.
	Tunnel() (conn net.Conn, r io.Reader, err error)
}

// Arrival is an optional Downstream capability: when the request head began to arrive. A
// gRPC call's grpc-timeout counts from it (grpcdeadline.go): the client's deadline was
// running while the plugins ran and the body prefix was waited for. Without it, it counts
// from the proxy's start.
type Arrival interface {
	StartTime() time.Time
}

// CancelNotifier is an optional Downstream capability: f runs once when the Context is
// canceled (at once if it already is), until it is replaced; nil removes it. It does what
// context.AfterFunc does without allocating, which the proxy's zero-allocation request path
// needs: it interrupts the upstream connection in use when the request is canceled.
type CancelNotifier interface {
	OnCancel(f func())
}
