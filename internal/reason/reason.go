// Package reason defines the stable reason codes of gateway-generated responses and the
// Error type that carries one. It is a leaf: it imports no other Sluice package, so every
// layer of the data path can return a reason without an import cycle.
package reason

import "errors"

// Code is a stable snake_case reason. It appears in the X-Sluice-Error response header,
// the JSON error body, the access log and metrics. docs/errors.md lists each with advice.
type Code string

// Reason codes. Add new codes at the end of their group and document them in docs/errors.md.
const (
	// Client side (4xx).
	BadRequest      Code = "bad_request"
	NoRoute         Code = "no_route"
	BodyTooLarge    Code = "request_body_too_large"
	HeaderTooLarge  Code = "request_header_too_large"
	NotImplemented  Code = "not_implemented"
	VersionNotSupp  Code = "http_version_not_supported"
	ClientBodyError Code = "client_body_error"
	ClientTimeout   Code = "client_timeout"
	// UnderscoreInHeader: a header field name with "_", refused by a listener with
	// underscores_in_headers: reject.
	UnderscoreInHeader Code = "underscore_in_header"
	// ACMEChallengeUnknown: an ACME HTTP-01 request for a name the gateway gets certificates
	// for, with a token it has no challenge for.
	ACMEChallengeUnknown Code = "acme_challenge_unknown"
	// ClientCertNoLongerTrusted: a request on a TLS connection whose client certificate (or
	// its lack of one) passed the listener's client_auth and client_ca_file at its handshake
	// and fails them since they changed; the connection is closed (421: clients retry on a
	// new connection).
	ClientCertNoLongerTrusted Code = "client_cert_no_longer_trusted"

	// Upstream side (5xx).
	ConnectRefused   Code = "upstream_connect_refused"
	ConnectFailed    Code = "upstream_connect_failed"
	ConnectTimeout   Code = "upstream_connect_timeout"
	ResetBeforeSend  Code = "upstream_reset_before_request"
	ResetBeforeResp  Code = "upstream_reset_before_response"
	ResponseTimeout  Code = "upstream_timeout"
	BadResponse      Code = "upstream_bad_response"
	ResetDuringResp  Code = "upstream_reset_during_response"
	PoolQueueFull    Code = "pool_queue_full"
	PoolQueueTimeout Code = "pool_queue_timeout"
	NoHealthyTarget  Code = "no_healthy_target"
	GatewayShutdown  Code = "gateway_shutting_down"
	InternalError    Code = "internal_error"
	TLSHandshake     Code = "upstream_tls_handshake"
	TLSCertificate   Code = "upstream_tls_certificate"
	// H2Unavailable: the request needs HTTP/2 (gRPC) and the target of a protocol auto
	// upstream chose HTTP/1.1 in the TLS handshake (ALPN).
	H2Unavailable Code = "upstream_h2_unavailable"

	// Retry outcomes.
	RetryBudgetExhausted Code = "retry_budget_exhausted"
	RetryLimitReached    Code = "retry_limit_reached"
	UpstreamOverloaded   Code = "upstream_overloaded"
	UpstreamStatus       Code = "upstream_retryable_status"
)

// Error is a failure the gateway itself answers for. Status is the HTTP status to send.
type Error struct {
	Status int
	Code   Code
	// Target is the upstream target address involved, if any.
	Target string
	// Err is the underlying cause, for logs. It is not shown to clients by default.
	Err error
}

func (e *Error) Error() string {
	msg := string(e.Code)
	if e.Target != "" {
		msg += " (target " + e.Target + ")"
	}
	if e.Err != nil {
		msg += ": " + e.Err.Error()
	}
	return msg
}

func (e *Error) Unwrap() error { return e.Err }

// New returns an *Error.
func New(status int, code Code, target string, err error) *Error {
	return &Error{Status: status, Code: code, Target: target, Err: err}
}

// From returns the *Error in err's chain, or a 502 internal_error wrapping err.
func From(err error) *Error {
	var re *Error
	if errors.As(err, &re) {
		return re
	}
	return &Error{Status: 502, Code: InternalError, Err: err}
}

var descriptions = map[Code]string{
	BadRequest:      "the request is malformed or ambiguous and was refused",
	NoRoute:         "no route matches this request",
	BodyTooLarge:    "the request body is larger than the configured limit",
	HeaderTooLarge:  "the request line or headers are larger than the configured limit",
	NotImplemented:  "the request uses a feature this gateway does not implement",
	VersionNotSupp:  "the HTTP version is not supported",
	ClientBodyError: "the request body could not be read from the client",
	ClientTimeout:   "the client was too slow sending the request",

	UnderscoreInHeader: "a header field name contains an underscore, which this listener refuses",

	ACMEChallengeUnknown: "no ACME challenge is pending for this token",

	ClientCertNoLongerTrusted: "the client certificate of this connection is no longer trusted by the listener; retry on a new connection",

	ConnectRefused:       "the upstream target refused the connection",
	ConnectFailed:        "the connection to the upstream target failed",
	ConnectTimeout:       "connecting to the upstream target timed out",
	ResetBeforeSend:      "the upstream connection closed before the request was sent",
	ResetBeforeResp:      "the upstream connection closed after the request was sent, before any response",
	ResponseTimeout:      "the upstream target did not answer in time",
	BadResponse:          "the upstream target sent an invalid response",
	ResetDuringResp:      "the upstream connection broke while the response was being received",
	PoolQueueFull:        "too many requests are waiting for an upstream connection",
	PoolQueueTimeout:     "no upstream connection became free in time",
	NoHealthyTarget:      "no healthy upstream target is available",
	GatewayShutdown:      "the gateway is shutting down",
	RetryBudgetExhausted: "the upstream failed and its retry budget is spent",
	UpstreamStatus:       "the upstream answered with a retryable status",
	RetryLimitReached:    "the upstream failed and too many retries to it are already running",
	UpstreamOverloaded:   "the upstream's limit of concurrent requests is reached",
	InternalError:        "the gateway failed to handle the request",
	TLSHandshake:         "the TLS handshake with the upstream target failed",
	TLSCertificate:       "the upstream target's TLS certificate could not be verified",
	H2Unavailable:        "the request needs HTTP/2 and the upstream target speaks only HTTP/1.1",
}

// ConnectFailure reports whether c says that no connection to the target could be
// established: a refused, failed or timed-out dial, or a failed TLS handshake. Nothing of the
// request was sent then, so any method may be retried.
func ConnectFailure(c Code) bool {
	switch c {
	case ConnectRefused, ConnectFailed, ConnectTimeout, TLSHandshake, TLSCertificate:
		return true
	}
	return false
}

// TargetFault reports whether a failure with code c is the target's doing: it refused, failed
// or timed out a connection or a handshake, broke a connection, or answered late, badly, with
// a retryable status or without HTTP/2. Only these count against a target: in passive health
// and the balancer's failure counts, and an active check that fails with another code gives
// no verdict. The others say nothing of the target: the client's faults, the gateway's own
// limits and queues (pool_queue_timeout: every connection or stream to the target was busy,
// and counting that would eject a busy, healthy target and pile its load on the others), a
// shutdown, retry outcomes, internal errors.
func (c Code) TargetFault() bool {
	switch c {
	case ConnectRefused, ConnectFailed, ConnectTimeout, TLSHandshake, TLSCertificate,
		ResetBeforeSend, ResetBeforeResp, ResetDuringResp, ResponseTimeout, BadResponse,
		UpstreamStatus, H2Unavailable:
		return true
	}
	return false
}

// Describe returns a one-line, client-safe explanation of code.
func Describe(c Code) string {
	if d, ok := descriptions[c]; ok {
		return d
	}
	return string(c)
}
