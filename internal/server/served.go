package server

import (
	"crypto/tls"
	"time"

	"sluice/internal/h1"
)

// Served is the accounting view of a request that the server handed to its Handler or
// refused itself: what the access log and metrics need, the same for an HTTP/1.1
// [Exchange] and an HTTP/2 [Stream]. It is valid until the request's handler returns.
type Served interface {
	Request() *h1.Request
	// StartTime is when the request began to arrive: its first byte (HTTP/1) or its
	// HEADERS frame (HTTP/2). A request refused while its head was read counts from then
	// too, not from its answer.
	StartTime() time.Time
	// Proto is "HTTP/1.0", "HTTP/1.1" or "HTTP/2"; "" for an HTTP/1 request refused before
	// its version was read.
	Proto() string
	ListenerName() string
	ClientIP() string
	TLS() *tls.ConnectionState
	// ClientSubject is the subject of the client's verified certificate in RFC 2253 form,
	// "" without one (plain TCP, no certificate). It is rendered once per connection.
	ClientSubject() string
	RequestIDBytes() []byte
	Status() int
	BodyBytes() int64
	BytesOut() int64
	BytesSent() int64
	DroppedFields() (header, trailer int)
	SplicedBytes() (request, response int64)
	// ErrorGRPCStatus is the grpc-status of the gateway's own error answer to a gRPC or
	// grpc-web request (a trailers-only answer, grpcErrorHead); ok is false when the
	// gateway wrote none (a backend's answer is the proxy's to report: proxy.Record).
	ErrorGRPCStatus() (code int, ok bool)
}

var (
	_ Served = (*Exchange)(nil)
	_ Served = (*Stream)(nil)
)
