// Package compress is the compress plugin: it compresses upstream response bodies with
// gzip, brotli or zstd, as negotiated from the client's Accept-Encoding (negotiate.go), for
// the media types and sizes configured, as they stream.
//
// It works in three phases. The request phase (stage access, the first, so that it sees
// the client's Accept-Encoding before a transform such as sub-filter removes it) picks the
// coding into the request's slot. BodyStart decides per response: never for a range (206,
// Content-Range), an already encoded body, Cache-Control: no-transform, a streaming type
// (event streams, gRPC, multipart/x-mixed-replace) or a response marked
// X-Accel-Buffering: no, a type not configured, or a Content-Length below min_size; a
// response that could be compressed gets Vary: Accept-Encoding whether or not this client
// asked, so that caches keep the variants apart. Body compresses each upstream read and
// flushes the encoder after it (a sync flush), so a body that trickles reaches the client
// as it comes, decodable up to the last byte sent; the relay already flushes its writes to
// the client at the same points. Responses to HEAD and 204/304 never reach the body phase.
//
// Encoders are pooled per coding and level (encoder.go). Write compress after the plugins
// that rewrite bodies (sub-filter): body filters run in config order.
package compress

import (
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"sluice/internal/plugin"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StageAccess, New: New})
}

// Name is the plugin's name in configs.
const Name = "compress"

// skip is why a response was not compressed.
type skip uint8

const (
	eligible    skip = iota
	notAccepted      // the client accepts none of the offered codings
	wrongType        // Content-Type not in types (or none)
	tooSmall         // Content-Length below min_size
	encoded          // Content-Encoding already set
	partial          // 206 or Content-Range
	noTransform      // Cache-Control: no-transform
	streamed         // an event stream or another streaming type
	numSkips
)

var skipNames = [numSkips]string{
	notAccepted: "not_accepted", wrongType: "type", tooSmall: "too_small", encoded: "encoded",
	partial: "partial", noTransform: "no_transform", streamed: "streaming",
}

// Compress is one compress instance.
type Compress struct {
	slot  plugin.Slot
	set   settings
	pools [numCodings]*sync.Pool

	compressed [numCodings]atomic.Int64
	bytesIn    [numCodings]atomic.Int64
	bytesOut   [numCodings]atomic.Int64
	skipped    [numSkips]atomic.Int64
}

// New builds a compress instance.
func New(b *plugin.Build) (any, error) {
	c := DefaultConfig()
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	s, err := c.check(b)
	if err != nil {
		return nil, err
	}
	p := &Compress{slot: b.Slot(), set: s}
	for _, k := range s.prefer {
		p.pools[k] = poolFor(k, s.levels[k])
	}
	return p, nil
}

// Request picks the coding for the response from the client's Accept-Encoding (slot N).
func (p *Compress) Request(r *plugin.Request) error {
	r.Slot(p.slot).N = int64(negotiate(r.Header(), p.set.prefer))
	return nil
}

// BodyStart decides whether this response is compressed and, when it is, edits its head:
// Content-Encoding, a weak ETag (the bytes differ from the identity's), no Accept-Ranges
// (ranges would be of the compressed bytes). The gateway drops Content-Length.
func (p *Compress) BodyStart(r *plugin.Request, status int, h *plugin.Header) bool {
	why := p.check(status, h)
	if why == eligible {
		addVary(h)
		if c := Coding(r.Slot(p.slot).N); c != None {
			p.start(r, c, h)
			return true
		}
		why = notAccepted
	}
	p.skipped[why].Add(1)
	return false
}

// check says why the response cannot be compressed, or eligible.
func (p *Compress) check(status int, h *plugin.Header) skip {
	if status == 206 || h.Has("Content-Range") {
		return partial
	}
	if v, ok := h.Get("Content-Encoding"); ok && !plugin.EqualFold(trim(v), "identity") {
		return encoded
	}
	if h.HasToken("Cache-Control", "no-transform") {
		return noTransform
	}
	ct, _ := h.Get("Content-Type")
	typ, sub := splitType(ct)
	if streaming(typ, sub) {
		return streamed
	}
	if v, ok := h.Get("X-Accel-Buffering"); ok && plugin.EqualFold(trim(v), "no") {
		return streamed // the upstream asks proxies not to hold its bytes back (nginx's convention)
	}
	if !p.wants(typ, sub) {
		return wrongType
	}
	if v, ok := h.Get("Content-Length"); ok && p.set.minSize > 0 {
		if n, err := strconv.ParseInt(unsafe.String(unsafe.SliceData(v), len(v)), 10, 64); err == nil && n < p.set.minSize {
			return tooSmall
		}
	}
	return eligible
}

// wants reports whether the media type is one of the configured types.
func (p *Compress) wants(typ, sub []byte) bool {
	if len(typ) == 0 || len(sub) == 0 {
		return false
	}
	for _, m := range p.set.types {
		if m.match(typ, sub) {
			return true
		}
	}
	return false
}

// start turns compression on for the response: its head, its encoder (in the slot).
func (p *Compress) start(r *plugin.Request, c Coding, h *plugin.Header) {
	st := getStream(p.pools[c])
	r.Slot(p.slot).V = st
	h.Set("Content-Encoding", c.String())
	h.Del("Accept-Ranges")
	if v, ok := h.Get("ETag"); ok && len(v) > 0 && v[0] == '"' {
		// W/"x": the compressed bytes are a different representation (RFC 9110 §8.8.1);
		// nginx does the same. Built in the stream's scratch, as Set copies it.
		st.etag = append(append(st.etag[:0], "W/"...), v...)
		h.Set("ETag", unsafe.String(unsafe.SliceData(st.etag), len(st.etag)))
	}
	p.compressed[c].Add(1)
}

// addVary adds Vary: Accept-Encoding unless the response already varies on it (or on *).
func addVary(h *plugin.Header) {
	if h.HasToken("Vary", "Accept-Encoding") || h.HasToken("Vary", "*") {
		return
	}
	h.Add("Vary", "Accept-Encoding")
}

// Body compresses one upstream read into dst.
func (p *Compress) Body(r *plugin.Request, dst, in []byte, end bool) []byte {
	st := r.Slot(p.slot).V.(*stream)
	n := len(dst)
	dst = st.write(dst, in, end)
	p.bytesIn[st.coding].Add(int64(len(in)))
	p.bytesOut[st.coding].Add(int64(len(dst) - n))
	return dst
}

// Log returns the response's encoder to its pool (also when the body broke off: the next
// response resets it).
func (p *Compress) Log(r *plugin.Request, _ int) {
	s := r.Slot(p.slot)
	if st, ok := s.V.(*stream); ok {
		s.V = nil
		st.put()
	}
}

// PluginStats reports the responses compressed and the bytes in and out by coding, and the
// responses not compressed by reason.
func (p *Compress) PluginStats(emit func(plugin.Stat)) {
	for _, c := range p.set.prefer {
		name := c.String()
		emit(plugin.Stat{Key: "compress_responses", Label: name, Value: float64(p.compressed[c].Load())})
		emit(plugin.Stat{Key: "compress_in_bytes", Label: name, Value: float64(p.bytesIn[c].Load())})
		emit(plugin.Stat{Key: "compress_out_bytes", Label: name, Value: float64(p.bytesOut[c].Load())})
	}
	for why := notAccepted; why < numSkips; why++ {
		emit(plugin.Stat{Key: "compress_skipped", Label: skipNames[why], Value: float64(p.skipped[why].Load())})
	}
}

var (
	_ plugin.RequestFilter      = (*Compress)(nil)
	_ plugin.ResponseBodyFilter = (*Compress)(nil)
	_ plugin.LogFilter          = (*Compress)(nil)
	_ plugin.StatsReporter      = (*Compress)(nil)
)
