package server

// HTTP/2 frame constants and the names of the limits a client can pass (h2own.go enforces
// them).

// HTTP/2 frame types and flags (RFC 9113 §6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePing         = 0x6
	frameGoAway       = 0x7
	framePriority     = 0x2
	frameWindowUpdate = 0x8
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
	flagPadded     = 0x8
	flagPriority   = 0x20
)

// h2Preface is what an HTTP/2 client sends first (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Limits on a client: names used in logs and in sluice_http2_limit_hits_total.
const (
	LimitResets        = "rapid_reset"
	LimitControlFrames = "control_frame_flood"
	LimitEmptyFrames   = "empty_frame_flood"
	LimitContinuations = "continuation_flood"
	// LimitHeaderList: a header block decoded to more than twice max_header_bytes (an
	// HPACK bomb: a few bytes that index a large table entry many times): decoding keeps
	// no more, the stream is answered 431 and the connection stays.
	LimitHeaderList = "header_list_too_large"
)

// h2Limits are a connection's per-second and per-block limits (from H2Settings).
type h2Limits struct {
	resets, control, empty, continuations int
}
