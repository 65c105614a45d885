package config

import (
	"fmt"
	"slices"
	"time"
)

// Values of [Listener.Protocols].
const (
	ProtoHTTP1 = "http1" // HTTP/1.0 and HTTP/1.1
	ProtoH2    = "h2"    // HTTP/2 over TLS, chosen by ALPN
	ProtoH2C   = "h2c"   // HTTP/2 over plain TCP with prior knowledge (the client starts with the preface)
)

// HTTP2 are a listener's HTTP/2 limits (docs/http2.md). Each bounds what one client
// connection can make the gateway hold or do; a client past one gets its connection closed
// with a GOAWAY (ENHANCE_YOUR_CALM unless said otherwise), counted in
// sluice_http2_limit_hits_total and logged. The request header list is bounded by the
// listener's max_header_bytes, as for HTTP/1.1.
type HTTP2 struct {
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS: how many requests one
	// connection can have in flight. A stream above it is refused (RST_STREAM). Omitted or
	// 0: 100.
	MaxConcurrentStreams int `yaml:"max_concurrent_streams"`
	// StreamWindowBytes is the flow-control window of each request body (how much a client
	// may send before the gateway reads it). Omitted or 0: 1048576 (1 MiB).
	StreamWindowBytes int `yaml:"stream_window_bytes"`
	// ConnWindowBytes is the flow-control window of the connection (all request bodies
	// together). Omitted or 0: 4194304 (4 MiB).
	ConnWindowBytes int `yaml:"conn_window_bytes"`
	// MaxFrameBytes is SETTINGS_MAX_FRAME_SIZE, the largest frame payload accepted (16384 to
	// 16777215; a larger frame closes the connection with FRAME_SIZE_ERROR). Omitted or 0:
	// 16384.
	MaxFrameBytes int `yaml:"max_frame_bytes"`
	// MaxResetsPerSecond bounds the streams a client cancels (RST_STREAM) per second, and
	// the open streams its stream errors make the gateway reset: the rapid reset attack
	// (CVE-2023-44487) opens and cancels streams to make the gateway start work it never
	// finishes. Omitted or 0: 200.
	MaxResetsPerSecond int `yaml:"max_resets_per_second"`
	// MaxControlFramesPerSecond bounds the PING and SETTINGS frames a client sends per
	// second (each one makes the gateway answer); a PING that follows response frames the
	// gateway sent is not counted (gRPC clients send one per response). Omitted or 0: 100.
	MaxControlFramesPerSecond int `yaml:"max_control_frames_per_second"`
	// MaxEmptyFramesPerSecond bounds the frames that carry nothing per second: DATA without
	// payload and without END_STREAM, and empty CONTINUATION frames. Omitted or 0: 100.
	MaxEmptyFramesPerSecond int `yaml:"max_empty_frames_per_second"`
	// MaxContinuationFrames bounds the CONTINUATION frames of one header block (the
	// CONTINUATION flood, CVE-2024-27316 class). Omitted or 0: 16.
	MaxContinuationFrames int `yaml:"max_continuation_frames"`
	// DrainWait is the pause between the two GOAWAY frames of a graceful drain (shutdown,
	// or a reload that removes the listener): the first announces the end without a stream
	// id limit, the second, one round trip later, names the last stream the gateway will
	// serve. Omitted or 0: 1s.
	DrainWait Duration `yaml:"drain_wait"`
}

// HTTP/2 defaults.
const (
	DefaultH2MaxConcurrentStreams      = 100
	DefaultH2StreamWindowBytes         = 1 << 20
	DefaultH2ConnWindowBytes           = 4 << 20
	DefaultH2MaxFrameBytes             = 16384
	DefaultH2MaxResetsPerSecond        = 200
	DefaultH2MaxControlFramesPerSecond = 100
	DefaultH2MaxEmptyFramesPerSecond   = 100
	DefaultH2MaxContinuationFrames     = 16
	DefaultH2DrainWait                 = Duration(time.Second)
)

// HasProtocol reports whether the listener serves protocol p (ProtoHTTP1, ProtoH2,
// ProtoH2C). An empty Protocols list means HTTP/1.x only.
func (l *Listener) HasProtocol(p string) bool {
	if len(l.Protocols) == 0 {
		return p == ProtoHTTP1
	}
	return slices.Contains(l.Protocols, p)
}

func defaultHTTP2(h *HTTP2) {
	setIfZero(&h.MaxConcurrentStreams, DefaultH2MaxConcurrentStreams)
	setIfZero(&h.StreamWindowBytes, DefaultH2StreamWindowBytes)
	setIfZero(&h.ConnWindowBytes, DefaultH2ConnWindowBytes)
	setIfZero(&h.MaxFrameBytes, DefaultH2MaxFrameBytes)
	setIfZero(&h.MaxResetsPerSecond, DefaultH2MaxResetsPerSecond)
	setIfZero(&h.MaxControlFramesPerSecond, DefaultH2MaxControlFramesPerSecond)
	setIfZero(&h.MaxEmptyFramesPerSecond, DefaultH2MaxEmptyFramesPerSecond)
	setIfZero(&h.MaxContinuationFrames, DefaultH2MaxContinuationFrames)
	setIfZero(&h.DrainWait, DefaultH2DrainWait)
}

// validateProtocols checks listeners[i].protocols and the http2 block against the
// listener's TLS.
func validateProtocols(p *problems, b string, l *Listener) {
	seen := map[string]bool{}
	for j, proto := range l.Protocols {
		f := fmt.Sprintf("%s.protocols[%d]", b, j)
		switch {
		case proto != ProtoHTTP1 && proto != ProtoH2 && proto != ProtoH2C:
			p.add(f, "unknown protocol %q: want http1, h2 or h2c", proto)
		case seen[proto]:
			p.add(f, "duplicate protocol %q", proto)
		case proto == ProtoH2 && l.TLS == nil:
			p.add(f, "h2 is HTTP/2 over TLS and this listener has no tls; use h2c for HTTP/2 over plain TCP")
		case proto == ProtoH2C && l.TLS != nil:
			p.add(f, "h2c is HTTP/2 over plain TCP and this listener has tls; use h2")
		}
		seen[proto] = true
	}
	if len(l.Protocols) > 0 && !seen[ProtoHTTP1] {
		p.add(b+".protocols", "http1 is required (HTTP/1.1 clients and health checkers must still be served)")
	}
	h := l.HTTP2
	if !seen[ProtoH2] && !seen[ProtoH2C] {
		if h != (HTTP2{}) {
			p.add(b+".http2", "HTTP/2 limits on a listener whose protocols have neither h2 nor h2c")
		}
		return
	}
	counts := map[string]int64{
		"max_concurrent_streams": int64(h.MaxConcurrentStreams), "stream_window_bytes": int64(h.StreamWindowBytes),
		"conn_window_bytes": int64(h.ConnWindowBytes), "max_resets_per_second": int64(h.MaxResetsPerSecond),
		"max_control_frames_per_second": int64(h.MaxControlFramesPerSecond), "max_empty_frames_per_second": int64(h.MaxEmptyFramesPerSecond),
		"max_continuation_frames": int64(h.MaxContinuationFrames),
	}
	for _, name := range sortedKeys(counts) {
		if counts[name] < 0 {
			p.add(b+".http2."+name, "must not be negative (0 or omitted means the default)")
		}
	}
	if v := h.StreamWindowBytes; v > 1<<31-1 {
		p.add(b+".http2.stream_window_bytes", "at most 2147483647 (the largest HTTP/2 window)")
	}
	if v := h.ConnWindowBytes; v > 1<<31-1 {
		p.add(b+".http2.conn_window_bytes", "at most 2147483647 (the largest HTTP/2 window)")
	}
	if v := h.MaxFrameBytes; v != 0 && (v < 16384 || v > 1<<24-1) {
		p.add(b+".http2.max_frame_bytes", "must be between 16384 and 16777215 (RFC 9113 §6.5.2), got %d", v)
	}
	if h.DrainWait < 0 {
		p.add(b+".http2.drain_wait", "must not be negative")
	}
}
