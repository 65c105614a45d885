package proxy

// grpc-web (routes[].grpc_web): a browser's grpc-web call is translated at the gateway into
// a gRPC call over HTTP/2 to the upstream, and the answer back, as Envoy's grpc_web filter
// does (docs/http2.md#grpc-web):
//
//   - Request: content-type application/grpc-web[+proto] becomes application/grpc[+proto];
//     application/grpc-web-text[+proto] too, with the body base64-decoded on the way (each
//     4-character group on its own, so that the concatenated padded chunks some clients send
//     decode as well); te: trailers is set.
//   - Response: content-type application/grpc[+x] becomes application/grpc-web[+x] (or
//     -text); the message frames are passed through (base64-encoded for -text, in groups of
//     3 bytes so that no padding appears mid-stream); the gRPC trailers go in the body as a
//     final frame flagged 0x80 holding "name: value\r\n" lines with lower-case names. No
//     HTTP trailers reach the client, so HTTP/1.1 clients get everything. A trailers-only
//     answer (grpc-status in the head, no body) is passed as it is: grpc-web clients read the
//     status from the head then.
//   - An answer that is not gRPC (no application/grpc content-type: a proxy's HTML 502 page,
//     a plain-text error) is passed as it is, status, content-type and body, never
//     base64-encoded: a grpc-web client chooses how to read a body by the response's
//     content-type (base64 only for application/grpc-web-text, PROTOCOL-WEB.md), and maps
//     the HTTP status of any other answer to a gRPC code (502, 503, 504: UNAVAILABLE).
//
// CORS (browsers calling from another origin) is the cors plugin's: expose grpc-status and
// grpc-message to the page with its expose_headers.

import (
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"sluice/internal/h1"
	"sluice/internal/reason"
)

// grpc-web modes of a request (perRequest.web).
const (
	webNone   = iota
	webBinary // application/grpc-web
	webText   // application/grpc-web-text: base64 bodies
)

const (
	ctGRPC        = "application/grpc"
	ctGRPCWeb     = "application/grpc-web"
	ctGRPCWebText = "application/grpc-web-text"
)

// grpcWebMode is the grpc-web mode of a request whose content-type is ct.
func grpcWebMode(ct []byte) int {
	switch {
	case h1.HasMediaType(ct, ctGRPCWebText):
		return webText
	case h1.HasMediaType(ct, ctGRPCWeb):
		return webBinary
	}
	return webNone
}

// toGRPCRequest turns the upstream request of a grpc-web call into a gRPC one; body is the
// attempt's request body.
func toGRPCRequest(req *http.Request, mode int, body io.ReadCloser) {
	ct := req.Header.Get("Content-Type")
	from := ctGRPCWeb
	if mode == webText {
		from = ctGRPCWebText
		req.ContentLength = -1 // decoding changes the length
		req.Header.Del("Content-Length")
		if hb, ok := body.(*h2Body); ok {
			hb.decoded = true // the decoder signals its end (h2Body.ended)
		}
		if body != nil {
			body = &base64Reader{r: body}
		}
	}
	// The route's rewrite may have removed or replaced the client's field (remove_headers,
	// set_headers): the operator's field then stands as it is.
	if h1.HasMediaType([]byte(ct), from) {
		req.Header.Set("Content-Type", ctGRPC+ct[len(from):])
	}
	req.Header.Set("Te", "trailers")
	if body != nil {
		req.Body = body
	}
}

// webContentType is the grpc-web content-type of a gRPC response's ct.
func webContentType(ct string, mode int) string {
	to := ctGRPCWeb
	if mode == webText {
		to = ctGRPCWebText
	}
	if len(ct) >= len(ctGRPC) && strings.EqualFold(ct[:len(ctGRPC)], ctGRPC) {
		return to + ct[len(ctGRPC):]
	}
	return to
}

// webTrailerFrame appends to dst the grpc-web frame (flag 0x80, 4-byte length) holding tr's
// fields as "name: value\r\n" lines, names in lower case.
func webTrailerFrame(dst []byte, tr *h1.Header) []byte {
	start := len(dst)
	dst = append(dst, 0x80, 0, 0, 0, 0)
	for _, f := range tr.Fields {
		for _, c := range f.Name {
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			dst = append(dst, c)
		}
		dst = append(dst, ": "...)
		dst = append(dst, f.Value...)
		dst = append(dst, "\r\n"...)
	}
	binary.BigEndian.PutUint32(dst[start+1:], uint32(len(dst)-start-5))
	return dst
}

// webBody is the response body of a grpc-web call on its way to the client: the gRPC
// frames as they are, or base64 for -text (carry holds the 0 to 2 bytes not yet encoded).
// It follows the message framing of what it passed (track), so that a body the backend
// cuts off between two messages can still end with a trailer frame (endFailed). With mode
// webNone it is a gRPC call's answer to an HTTP/2 client: passed as it is, and a cut ends
// with HTTP trailers instead.
type webBody struct {
	mode  int
	carry []byte
	out   []byte
	// The message frame being passed: hdrN bytes of its 5-byte header (flag, length) seen,
	// then left payload bytes still to come. Between two frames both are 0.
	left uint32
	hdr  [5]byte
	hdrN int
}

// add returns what of p goes to the client now (valid until the next call).
func (w *webBody) add(p []byte) []byte {
	w.track(p)
	if w.mode != webText {
		return p
	}
	w.carry = append(w.carry, p...)
	n := len(w.carry) / 3 * 3
	w.out = base64.StdEncoding.AppendEncode(w.out[:0], w.carry[:n])
	w.carry = append(w.carry[:0], w.carry[n:]...)
	return w.out
}

// end returns the rest of the body and the trailer frame for tr (none when tr is empty).
func (w *webBody) end(tr *h1.Header) []byte {
	var frame []byte
	if len(tr.Fields) > 0 {
		frame = webTrailerFrame(nil, tr)
	}
	if w.mode != webText {
		return frame
	}
	w.carry = append(w.carry, frame...)
	w.out = base64.StdEncoding.AppendEncode(w.out[:0], w.carry)
	w.carry = w.carry[:0]
	return w.out
}

// track follows the message frames (a 5-byte header: flag byte, 4-byte big-endian length,
// then the payload) across p, the next body bytes.
func (w *webBody) track(p []byte) {
	for len(p) > 0 {
		if w.left > 0 {
			n := min(uint64(len(p)), uint64(w.left))
			w.left -= uint32(n)
			p = p[n:]
			continue
		}
		k := copy(w.hdr[w.hdrN:], p)
		w.hdrN += k
		p = p[k:]
		if w.hdrN == len(w.hdr) {
			w.left = binary.BigEndian.Uint32(w.hdr[1:])
			w.hdrN = 0
		}
	}
}

// atBoundary says whether the bytes passed end between two message frames.
func (w *webBody) atBoundary() bool { return w.hdrN == 0 && w.left == 0 }

// endFailed ends a gRPC answer whose upstream body failed with e with a trailer frame of
// its own, when the body passed so far ends between two messages: grpc-status from e
// (reason.GRPCStatus, as for the gateway's trailers-only errors) and grpc-message the
// reason code. A client then reads a status instead of a body that just stops. It reports
// false when that cannot be done, and the caller aborts: the answer was cut inside a
// message, after which no valid frame can follow (nothing is written then), or the
// client's side failed the write.
func (w *webBody) endFailed(ds ResponseSide, e *reason.Error) bool {
	if !w.atBoundary() {
		return false
	}
	var tr h1.Header
	tr.Add("Grpc-Status", strconv.Itoa(reason.GRPCStatus(e)))
	tr.Add("Grpc-Message", reason.GRPCMessage(string(e.Code)))
	if w.mode == webNone { // a gRPC client over HTTP/2 (relayH2): trailers proper
		return ds.Finish(&tr) == nil
	}
	if _, err := ds.Write(w.end(&tr)); err != nil {
		return false
	}
	return ds.Finish(nil) == nil
}

// base64Reader decodes a grpc-web-text request body: standard base64, each group of 4
// characters decoded on its own (a chunk may end with padding and another follow); line
// breaks are skipped.
type base64Reader struct {
	r    io.ReadCloser
	raw  [1024]byte
	dec  [768]byte // 1024 characters decode to at most 768 bytes
	pend []byte    // decoded, not yet returned
	in   [4]byte
	inN  int
	err  error
}

// errBase64Body is the error of a grpc-web-text body that is not base64.
var errBase64Body = errors.New("grpc-web-text request body is not base64")

func (b *base64Reader) Read(p []byte) (int, error) {
	for len(b.pend) == 0 {
		if b.err != nil {
			return 0, b.err
		}
		m, err := b.r.Read(b.raw[:])
		d := 0
		for _, c := range b.raw[:m] {
			if c == '\r' || c == '\n' {
				continue
			}
			b.in[b.inN] = c
			if b.inN++; b.inN < 4 {
				continue
			}
			b.inN = 0
			k, derr := base64.StdEncoding.Decode(b.dec[d:], b.in[:])
			if derr != nil {
				b.fail(fmt.Errorf("%w: group %q", errBase64Body, b.in[:]))
				break
			}
			d += k
		}
		b.pend = b.dec[:d]
		if b.err == nil && err != nil {
			b.err = err
			switch {
			case err == io.EOF && b.inN != 0:
				b.fail(fmt.Errorf("%w: it ends with a partial group of %d characters", errBase64Body, b.inN))
			case err == io.EOF:
				b.ended()
			}
		}
	}
	n := copy(p, b.pend)
	b.pend = b.pend[n:]
	return n, nil
}

func (b *base64Reader) Close() error { return b.r.Close() }

// decodedBody is the attempt's request body (h2Body) as its decoder sees it: the decoder
// tells it how the body ended once the last bytes were judged, whole (finish) or not
// (fail: the client's failure, so that the attempt is judged the client's fault,
// classifyH2, not the backend's).
type decodedBody interface {
	fail(err error)
	finish()
}

// ended signals the end of a body that decoded whole.
func (b *base64Reader) ended() {
	if d, ok := b.r.(decodedBody); ok {
		d.finish()
	}
}

// fail ends the body with a 400 bad_request: the client sent something that is not base64.
// Without it the library's stream reset made a 502 reset_before_response of the client's
// mistake, which gRPC clients retry and which counted against the target.
func (b *base64Reader) fail(err error) {
	re := reason.New(400, reason.BadRequest, "", err)
	b.err = re
	if f, ok := b.r.(decodedBody); ok {
		f.fail(re)
	}
}
