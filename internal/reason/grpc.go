package reason

// gRPC status codes (google.golang.org/grpc/codes) that gateway errors map to.
const (
	GRPCCanceled          = 1
	GRPCUnknown           = 2
	GRPCDeadlineExceeded  = 4
	GRPCPermissionDenied  = 7
	GRPCResourceExhausted = 8
	GRPCUnimplemented     = 12
	GRPCInternal          = 13
	GRPCUnavailable       = 14
	GRPCUnauthenticated   = 16
)

// grpcByCode maps reason codes to gRPC statuses. The rule that matters is UNAVAILABLE:
// gRPC clients retry it by default (and so do their service configs' retry policies), so
// it is given only where the request provably did not reach a backend. A failure after
// the request may have been processed (a reset after sending, a bad response) is UNKNOWN,
// which no default policy retries. docs/http2.md shows the table.
var grpcByCode = map[Code]int{
	// Not delivered: safe to retry.
	ConnectRefused:   GRPCUnavailable,
	ConnectFailed:    GRPCUnavailable,
	ConnectTimeout:   GRPCUnavailable,
	ResetBeforeSend:  GRPCUnavailable,
	NoHealthyTarget:  GRPCUnavailable,
	GatewayShutdown:  GRPCUnavailable,
	TLSHandshake:     GRPCUnavailable,
	TLSCertificate:   GRPCUnavailable,
	PoolQueueTimeout: GRPCUnavailable,
	H2Unavailable:    GRPCUnavailable,
	// Refused before routing; a new connection's handshake decides.
	ClientCertNoLongerTrusted: GRPCUnavailable,
	// Timeouts.
	ResponseTimeout: GRPCDeadlineExceeded,
	ClientTimeout:   GRPCDeadlineExceeded,
	// Limits and overload.
	BodyTooLarge:         GRPCResourceExhausted,
	HeaderTooLarge:       GRPCResourceExhausted,
	PoolQueueFull:        GRPCResourceExhausted,
	UpstreamOverloaded:   GRPCResourceExhausted,
	RetryBudgetExhausted: GRPCResourceExhausted,
	// No such method here.
	NoRoute:        GRPCUnimplemented,
	NotImplemented: GRPCUnimplemented,
	VersionNotSupp: GRPCUnimplemented,
	// The client's side.
	ClientBodyError:    GRPCCanceled,
	BadRequest:         GRPCInternal,
	UnderscoreInHeader: GRPCInternal,
	// May have been processed.
	ResetBeforeResp:   GRPCUnknown,
	ResetDuringResp:   GRPCUnknown,
	BadResponse:       GRPCUnknown,
	UpstreamStatus:    GRPCUnknown,
	RetryLimitReached: GRPCUnknown,
	InternalError:     GRPCInternal,
}

// GRPCStatus is the gRPC status code of a gateway error: by its reason code, else (a code
// added later, a plugin's) by its HTTP status as the gRPC spec maps them
// (doc/http-grpc-status-mapping.md), except that 502, 503 and 504 are not taken for
// UNAVAILABLE: without a code that says so, nothing proves the request was not delivered.
func GRPCStatus(e *Error) int {
	if c, ok := grpcByCode[e.Code]; ok {
		return c
	}
	switch e.Status {
	case 401:
		return GRPCUnauthenticated
	case 403:
		return GRPCPermissionDenied
	case 404, 405, 501:
		return GRPCUnimplemented
	case 408, 504:
		return GRPCDeadlineExceeded
	case 413, 429, 431:
		return GRPCResourceExhausted
	case 499:
		return GRPCCanceled
	case 400:
		return GRPCInternal
	}
	return GRPCUnknown
}

// GRPCMessage percent-encodes s for a grpc-message field: bytes outside printable ASCII,
// and '%', become %XX (gRPC over HTTP/2 spec, "Responses").
func GRPCMessage(s string) string {
	const hex = "0123456789ABCDEF"
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '%' {
			b = append(b, '%', hex[c>>4], hex[c&15])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}
