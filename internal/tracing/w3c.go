package tracing

import (
	"bytes"
	"encoding/hex"
)

// TraceID is a W3C trace-id: 16 bytes, never all zero when valid.
type TraceID [16]byte

// SpanID is a W3C parent-id (a span id): 8 bytes, never all zero when valid.
type SpanID [8]byte

// IsZero reports whether id is all zero (invalid on the wire).
func (id TraceID) IsZero() bool { return id == TraceID{} }

// IsZero reports whether id is all zero (invalid on the wire).
func (id SpanID) IsZero() bool { return id == SpanID{} }

// FlagSampled is the sampled bit of trace-flags (W3C Trace Context §3.2.2.5).
const FlagSampled = 0x01

// Parent is a valid inbound trace context: the caller's trace, its span and its flags.
type Parent struct {
	TraceID TraceID
	SpanID  SpanID
	Flags   byte
}

// Sampled reports whether the caller recorded its span (the sampled flag).
func (p Parent) Sampled() bool { return p.Flags&FlagSampled != 0 }

// traceparentLen is the length of a version 00 traceparent value:
// "00-" + 32 hex + "-" + 16 hex + "-" + 2 hex.
const traceparentLen = 55

// ParseTraceparent parses a traceparent value (W3C Trace Context §3.2). It accepts only
// lower-case hex, rejects version ff, an all-zero trace-id or parent-id, and a version 00
// value of any other length. A higher version is parsed by the version 00 fields when it is
// at least as long and the 56th character, if any, is '-' (§4.3: a newer version may add
// fields after these). It allocates nothing.
func ParseTraceparent(v []byte) (Parent, bool) {
	var p Parent
	if len(v) < traceparentLen || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return p, false
	}
	var ver [1]byte
	if !decodeLowerHex(ver[:], v[0:2]) || ver[0] == 0xff {
		return p, false
	}
	if ver[0] == 0 && len(v) != traceparentLen {
		return p, false
	}
	if len(v) > traceparentLen && v[traceparentLen] != '-' {
		return p, false
	}
	var flags [1]byte
	if !decodeLowerHex(p.TraceID[:], v[3:35]) || !decodeLowerHex(p.SpanID[:], v[36:52]) ||
		!decodeLowerHex(flags[:], v[53:55]) {
		return p, false
	}
	if p.TraceID.IsZero() || p.SpanID.IsZero() {
		return p, false
	}
	p.Flags = flags[0]
	return p, true
}

// decodeLowerHex decodes src (2*len(dst) characters of 0-9a-f) into dst. Upper-case hex is
// invalid in traceparent (§3.2.2).
func decodeLowerHex(dst, src []byte) bool {
	for i := range dst {
		hi, ok1 := hexVal(src[2*i])
		lo, ok2 := hexVal(src[2*i+1])
		if !ok1 || !ok2 {
			return false
		}
		dst[i] = hi<<4 | lo
	}
	return true
}

func hexVal(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// AppendTraceparent appends the version 00 traceparent value for trace t, parent span s and
// the sampled flag to dst. Other flag bits are sent as 0 (§3.2.2.5: a version 00 sender sets
// only the bits it knows).
func AppendTraceparent(dst []byte, t TraceID, s SpanID, sampled bool) []byte {
	dst = append(dst, "00-"...)
	dst = hex.AppendEncode(dst, t[:])
	dst = append(dst, '-')
	dst = hex.AppendEncode(dst, s[:])
	if sampled {
		return append(dst, "-01"...)
	}
	return append(dst, "-00"...)
}

// maxTracestateMembers is the most list-members a tracestate may have (§3.3.1.1).
const maxTracestateMembers = 32

// ValidTracestate reports whether v is a well-formed tracestate list (§3.3.1): at most 32
// comma-separated list-members "key=value" (empty members and optional white space
// allowed), keys of a-z 0-9 _ - * / (starting with a-z or 0-9; "tenant@system" with a
// simple key on each side, the system part at most 14 characters), values of printable
// ASCII except ',' and '=' (at most 256, the last not a space). A caller that receives an
// invalid one drops it, as a vendor that cannot parse tracestate may (§3.3.1.2).
func ValidTracestate(v []byte) bool {
	members := 0
	for len(v) > 0 {
		var m []byte
		m, v, _ = bytes.Cut(v, []byte{','})
		m = bytes.Trim(m, " \t") // optional white space around members (§3.3.1.1)
		if len(m) == 0 {
			continue
		}
		members++
		if members > maxTracestateMembers || !validMember(m) {
			return false
		}
	}
	return true
}

func validMember(m []byte) bool {
	key, val, ok := bytes.Cut(m, []byte{'='})
	if !ok || !validKey(key) || len(val) == 0 || len(val) > 256 || val[len(val)-1] == ' ' {
		return false
	}
	for _, c := range val {
		if c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

func validKey(k []byte) bool {
	tenant, system, multi := bytes.Cut(k, []byte{'@'})
	if !multi {
		return simpleKey(k, 256)
	}
	return simpleKey(tenant, 241) && simpleKey(system, 14)
}

func simpleKey(k []byte, max int) bool {
	if len(k) == 0 || len(k) > max || !(k[0] >= 'a' && k[0] <= 'z' || k[0] >= '0' && k[0] <= '9') {
		return false
	}
	for _, c := range k {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '*' || c == '/') {
			return false
		}
	}
	return true
}
