package proxy

// Request trailers on an HTTP/2 attempt. The HTTP/1.1 path ends a chunked request body with
// the client's trailer section (proxy.go, sendBody); an HTTP/2 upstream's request used to end
// without it. The HTTP/2 client sends req.Trailer after the body when the map is not nil
// (a HEADERS frame with END_STREAM; when the map is still empty then, END_STREAM goes on
// the body's last DATA frame, or an empty one when the last read brought no bytes), and
// reads the map only after the body's last read, on the goroutine that reads the body: so
// the map can be filled in h2Body.Read when the client's body ends.
//
// Only a body that may carry trailers asks for them: a chunked HTTP/1.1 body, or an HTTP/2
// client's body without a content-length. A body held whole before the attempt (preEOF)
// has its trailers known already: they go in req.Trailer at once (the client then declares
// them in a trailer field of the head, in place of the client's own), and a body without
// any keeps its last DATA frame's END_STREAM (no extra frame per gRPC unary call). A body
// still streaming gets an empty map, filled at its end; its head keeps the client's Trailer
// field, if any, as the HTTP/1.1 path forwards it.
//
// The fields forwarded are the ones the HTTP/1.1 path forwards: dropTrailers removes those
// no trailer section may carry (h1.ForbiddenTrailer, which includes every connection-
// specific field HTTP/2 forbids, RFC 9113 §8.2.2) and the gateway's own. TE: trailers is
// about the response (the client takes trailers) and does not gate request trailers.

import (
	"net/http"
	"net/textproto"
)

// requestTrailers sets up req's trailers for body (see above).
func requestTrailers(req *http.Request, body *h2Body) {
	fwd := body.fwd
	if !fwd.req.Chunked {
		return
	}
	if !fwd.preEOF {
		body.trailer = http.Header{}
		req.Trailer = body.trailer
		return
	}
	if tr := fwd.ds.BodyTrailer(); tr == nil || len(tr.Fields) == 0 {
		return // the common case (a gRPC unary call): nothing allocated
	}
	tr := http.Header{}
	if body.copyTrailer(tr) > 0 {
		req.Header.Del("Trailer") // the client declares tr's names itself
		req.Trailer = tr
	}
}

// fillTrailer copies the client's trailer section into b.trailer when the body ended.
func (b *h2Body) fillTrailer() {
	if b.trailer != nil {
		b.copyTrailer(b.trailer)
	}
}

// copyTrailer copies into m the client's trailer fields that may be forwarded, counts the
// others in b.dropped, and returns how many it copied.
func (b *h2Body) copyTrailer(m http.Header) int {
	tr := b.fwd.ds.BodyTrailer()
	if tr == nil {
		return 0
	}
	if n := b.p.dropTrailers(b.fwd.ds, tr, b.fwd.rt.skip, "request"); n > 0 {
		b.dropped.Store(int32(n))
	}
	for _, f := range tr.Fields {
		name := textproto.CanonicalMIMEHeaderKey(string(f.Name))
		m[name] = append(m[name], string(f.Value))
	}
	return len(tr.Fields)
}
