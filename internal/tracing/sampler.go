package tracing

import (
	"encoding/binary"
	"math"
	"math/rand/v2"
)

// Sampler names (config tracing.sampler), OpenTelemetry's OTEL_TRACES_SAMPLER values.
const (
	SamplerAlwaysOn       = "always_on"
	SamplerAlwaysOff      = "always_off"
	SamplerRatio          = "traceidratio"
	SamplerParentOn       = "parentbased_always_on"
	SamplerParentOff      = "parentbased_always_off"
	SamplerParentRatio    = "parentbased_traceidratio"
	DefaultSamplerName    = SamplerParentRatio
	DefaultSamplerRatio   = 0.01
	samplerRootOn         = 1
	samplerRootOff        = 2
	samplerRootRatio      = 3
	samplerParentBasedBit = 4
)

// Samplers lists the valid sampler names.
var Samplers = []string{SamplerAlwaysOn, SamplerAlwaysOff, SamplerRatio, SamplerParentOn, SamplerParentOff, SamplerParentRatio}

// Sampler decides whether a request is recorded, from its inbound context and its trace
// id, before any span exists: a plain value, no SDK, no allocation.
//
// The ratio test is OpenTelemetry's TraceIDRatioBased: the last 8 bytes of the trace id,
// shifted right by one, below ratio*2^63. Trace ids are random, so this is the ratio over
// requests; and a service whose OpenTelemetry SDK samples at the same ratio takes the same
// decision for the same trace.
type Sampler struct {
	mode  int
	bound uint64
}

// NewSampler returns the sampler named name (one of [Samplers]) with ratio (0 to 1, for
// the ratio samplers). ok is false for an unknown name.
func NewSampler(name string, ratio float64) (s Sampler, ok bool) {
	switch name {
	case SamplerAlwaysOn:
		s.mode = samplerRootOn
	case SamplerAlwaysOff:
		s.mode = samplerRootOff
	case SamplerRatio:
		s.mode = samplerRootRatio
	case SamplerParentOn:
		s.mode = samplerRootOn | samplerParentBasedBit
	case SamplerParentOff:
		s.mode = samplerRootOff | samplerParentBasedBit
	case SamplerParentRatio:
		s.mode = samplerRootRatio | samplerParentBasedBit
	default:
		return s, false
	}
	switch {
	case ratio >= 1:
		s.bound = math.MaxUint64
	case ratio > 0:
		s.bound = uint64(ratio * (1 << 63))
	}
	return s, true
}

// Sample decides for a request of trace t; parent is its valid inbound context, when
// hasParent. A parent-based sampler follows the parent's sampled flag; otherwise (or with no
// parent) the root rule decides.
func (s Sampler) Sample(t TraceID, parent Parent, hasParent bool) bool {
	if hasParent && s.mode&samplerParentBasedBit != 0 {
		return parent.Sampled()
	}
	switch s.mode &^ samplerParentBasedBit {
	case samplerRootOn:
		return true
	case samplerRootRatio:
		if s.bound == math.MaxUint64 {
			return true
		}
		return binary.BigEndian.Uint64(t[8:16])>>1 < s.bound
	}
	return false
}

// NewTraceID returns a random, non-zero trace id. math/rand/v2's global source is the
// runtime's per-thread ChaCha8 generator: no lock, no allocation.
func NewTraceID() TraceID {
	var t TraceID
	for t.IsZero() {
		binary.BigEndian.PutUint64(t[:8], rand.Uint64())
		binary.BigEndian.PutUint64(t[8:], rand.Uint64())
	}
	return t
}

// NewSpanID returns a random, non-zero span id.
func NewSpanID() SpanID {
	var s SpanID
	for s.IsZero() {
		binary.BigEndian.PutUint64(s[:], rand.Uint64())
	}
	return s
}
