package h1

// Field is one header field. Name keeps the case received; Value has OWS trimmed.
type Field struct{ Name, Value []byte }

// Header is an ordered list of fields: duplicates are kept and order is preserved, as a
// proxy must forward them (RFC 9110 §5.3).
//
// Fields parsed by [ReadRequest], [ReadResponse] or [BodyReader] point into a buffer owned by
// the message and stay valid until its Reset. Fields added with [Header.Add] point into a
// buffer owned by the Header. A Header must not be copied by value once in use: the copy
// would share that buffer.
type Header struct {
	Fields []Field

	arena []byte // backing store of Add, reused after Reset
}

// Get returns the value of the first field named name (ASCII case-insensitive).
func (h *Header) Get(name string) ([]byte, bool) {
	for i := range h.Fields {
		if EqualFold(h.Fields[i].Name, name) {
			return h.Fields[i].Value, true
		}
	}
	return nil, false
}

// HasToken reports whether a field named name lists token in its comma-separated value
// (case-insensitive), as "Connection: keep-alive, Upgrade" lists "upgrade".
func (h *Header) HasToken(name, token string) bool {
	for i := range h.Fields {
		if EqualFold(h.Fields[i].Name, name) && hasToken(h.Fields[i].Value, token) {
			return true
		}
	}
	return false
}

// Has reports whether a field named name is present.
func (h *Header) Has(name string) bool {
	_, ok := h.Get(name)
	return ok
}

// Count returns the number of fields named name.
func (h *Header) Count(name string) int {
	n := 0
	for i := range h.Fields {
		if EqualFold(h.Fields[i].Name, name) {
			n++
		}
	}
	return n
}

// Del removes every field named name, keeping the order of the others.
func (h *Header) Del(name string) {
	h.filter(func(f *Field) bool { return EqualFold(f.Name, name) })
}

// Add appends a field, copying name and value.
func (h *Header) Add(name, value string) {
	start := len(h.arena)
	h.arena = append(h.arena, name...)
	h.arena = append(h.arena, value...)
	// Full slice expressions: an append to one of them must never overwrite the other.
	mid := start + len(name)
	end := mid + len(value)
	h.Fields = append(h.Fields, Field{Name: h.arena[start:mid:mid], Value: h.arena[mid:end:end]})
}

// Grow makes room for fields more fields holding bytes more bytes of names and values, so
// that that many Adds allocate nothing (one allocation each for the fields and the bytes,
// instead of the doublings of a header filled from nothing).
func (h *Header) Grow(fields, bytes int) {
	if fields > cap(h.Fields)-len(h.Fields) {
		h.Fields = append(make([]Field, 0, len(h.Fields)+fields), h.Fields...)
	}
	if bytes > cap(h.arena)-len(h.arena) {
		// Fields point into the old arena, which stays theirs: only new bytes go in the new one.
		h.arena = make([]byte, 0, bytes)
	}
}

// Set replaces every field named name by one field with value.
func (h *Header) Set(name, value string) {
	h.Del(name)
	h.Add(name, value)
}

// Reset removes all fields, keeping the allocated memory for reuse.
func (h *Header) Reset() {
	clear(h.Fields) // drop references into old message buffers
	h.Fields = h.Fields[:0]
	h.arena = h.arena[:0]
}

// hopByHop are the fields that describe one connection, never forwarded by a proxy
// (RFC 9110 §7.6.1, RFC 9112 §6.1 and §7.4 for TE and Transfer-Encoding). Keep-Alive and
// Proxy-Connection are legacy HTTP/1.0 connection fields. Trailer is not one of them
// (RFC 9110 §6.6.2): it announces the trailer fields of the message and is forwarded.
var hopByHop = [...]string{
	"Connection", "Keep-Alive", "Proxy-Connection", "TE",
	"Transfer-Encoding", "Upgrade", "Proxy-Authenticate", "Proxy-Authorization",
}

// forbiddenTrailers are the fields a trailer section must not carry (RFC 9110 §6.5.1): those
// that frame the message or route it, connection (hop-by-hop) fields, request modifiers
// (controls and conditionals), authentication and cookies, response control data, and those
// that say how to process the content. They must be known before the content, so a recipient
// that merged them from a trailer into the header section would act on a value no sender may
// put there. Forwarded and Via belong with routing: they describe the path the request took.
var forbiddenTrailers = [...]string{
	"Content-Length", "Transfer-Encoding", "Trailer", "Host", "Forwarded", "Via",
	"Connection", "Keep-Alive", "Proxy-Connection", "TE", "Upgrade",
	"Cache-Control", "Expect", "Max-Forwards", "Pragma", "Range",
	"If-Match", "If-None-Match", "If-Modified-Since", "If-Unmodified-Since", "If-Range",
	"Authorization", "Proxy-Authorization", "WWW-Authenticate", "Proxy-Authenticate", "Cookie", "Set-Cookie",
	"Age", "Date", "Expires", "Location", "Retry-After", "Vary", "Warning",
	"Content-Encoding", "Content-Type", "Content-Range",
}

// ForbiddenTrailer reports whether a field named name must not be sent in a trailer section
// (RFC 9110 §6.5.1; the list is forbiddenTrailers). A proxy drops such fields from the
// trailers it forwards.
func ForbiddenTrailer(name []byte) bool {
	for _, f := range forbiddenTrailers {
		if EqualFold(name, f) {
			return true
		}
	}
	return false
}

// RemoveFunc removes the fields for which drop returns true, keeping the order of the others,
// and returns how many it removed.
func (h *Header) RemoveFunc(drop func(*Field) bool) int {
	n := len(h.Fields)
	h.filter(drop)
	return n - len(h.Fields)
}

// RemoveHopByHop removes the hop-by-hop fields listed in RFC 9110 §7.6.1 and every field
// named by a token of any Connection field. It allocates only when there are more than
// eight Connection fields.
func (h *Header) RemoveHopByHop() {
	// The Connection values must be collected first: filtering moves fields in place.
	var stack [8][]byte
	conn := stack[:0]
	for i := range h.Fields {
		if EqualFold(h.Fields[i].Name, "Connection") {
			conn = append(conn, h.Fields[i].Value)
		}
	}
	h.filter(func(f *Field) bool {
		for _, name := range hopByHop {
			if EqualFold(f.Name, name) {
				return true
			}
		}
		for _, list := range conn {
			for len(list) > 0 {
				var tok []byte
				tok, list = nextElement(list)
				if EqualFold(f.Name, tok) {
					return true
				}
			}
		}
		return false
	})
}

// filter removes the fields for which drop returns true, preserving order.
func (h *Header) filter(drop func(*Field) bool) {
	out := h.Fields[:0]
	for i := range h.Fields {
		if !drop(&h.Fields[i]) {
			out = append(out, h.Fields[i])
		}
	}
	clear(h.Fields[len(out):])
	h.Fields = out
}

// AppendTo appends each field as "Name: Value\r\n" to dst. It writes the bytes as they are:
// fields that did not come from a parser should be checked with [Header.Validate] first.
func (h *Header) AppendTo(dst []byte) []byte {
	for i := range h.Fields {
		dst = append(dst, h.Fields[i].Name...)
		dst = append(dst, ':', ' ')
		dst = append(dst, h.Fields[i].Value...)
		dst = append(dst, '\r', '\n')
	}
	return dst
}

// Validate reports the first field whose name is not a token or whose value holds a byte
// not allowed in a field value (CR, LF, NUL and other controls) or leading or trailing
// whitespace. Writing such a field would let a value inject header lines.
func (h *Header) Validate() error {
	for i := range h.Fields {
		f := &h.Fields[i]
		if !validToken(f.Name) {
			return bad("invalid field name")
		}
		if !validValue(f.Value) || len(trimOWS(f.Value)) != len(f.Value) {
			return bad("invalid field value")
		}
	}
	return nil
}
