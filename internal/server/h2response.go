package server

// The response side of a Stream.

import (
	"errors"
	"strings"

	"sluice/internal/h1"
	"sluice/internal/reason"
)

// connectionFields are the fields that HTTP/2 forbids in a message (RFC 9113 §8.2.2); a
// response from an HTTP/1.1 upstream may carry them.
var connectionFields = []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade"}

func isConnectionField(name []byte) bool {
	for _, c := range connectionFields {
		if len(c) == len(name) && strings.EqualFold(c, string(name)) {
			return true
		}
	}
	return false
}

// WriteHead sets the response status and fields h, framed by contentLength: a length >= 0
// is sent as content-length; h1.LengthUnknown and h1.LengthNone need nothing (the stream's
// end delimits the body). The reason phrase does not exist in HTTP/2.
func (s *Stream) WriteHead(status int, _ []byte, h *h1.Header, contentLength int64) error {
	if s.wroteHead {
		return errHeadWritten
	}
	s.wroteHead, s.declared = true, contentLength
	s.status.Store(int32(status))
	s.noBody = string(s.Req.Method) == "HEAD" || contentLength == h1.LengthNone || status == 204 || status == 304
	if s.noBody {
		s.declared = h1.LengthNone
	}
	s.writeHeadOwn(status, h, contentLength)
	return nil
}

// Write writes response body bytes as DATA frames within the client's flow-control
// windows (waiting for them), buffered in the stream until Flush, 32 KiB or its end.
func (s *Stream) Write(p []byte) (int, error) {
	if !s.wroteHead {
		return 0, errors.New("response body written before head")
	}
	if s.noBody || len(p) == 0 {
		return len(p), nil
	}
	if s.declared >= 0 && s.bytesOut.Load()+int64(len(p)) > s.declared {
		return 0, errors.New("response body longer than its Content-Length")
	}
	n, err := s.writeOwn(p)
	s.bytesOut.Add(int64(n))
	if err != nil {
		s.writeErr = err
	}
	return n, err
}

// Flush sends buffered response bytes to the client now. Once a body of declared length
// is all written it does nothing: the handler's end sends it at once, with END_STREAM on
// its last DATA frame, where a flush would cost a round trip to the connection's writer
// and a frame more.
func (s *Stream) Flush() error {
	if s.declared >= 0 && s.bytesOut.Load() == s.declared {
		return nil
	}
	if len(s.x.wbuf) == 0 {
		return nil
	}
	return s.pushOwn()
}

// Finish ends the response with trailer fields (nil for none): an HTTP/2 trailer section
// (a HEADERS frame that ends the stream), whatever the upstream's framing was.
func (s *Stream) Finish(trailer *h1.Header) error {
	if trailer == nil || s.aborted {
		return nil
	}
	s.finishOwn(trailer)
	return nil
}

// Abort marks the response as broken: the stream is reset (RST_STREAM INTERNAL_ERROR) when
// the handler returns, and the client learns that the body is incomplete. Before the head
// it means no answer at all.
func (s *Stream) Abort() { s.aborted = true }

// WriteError answers with a gateway-generated error. A gRPC or grpc-web request
// (content-type application/grpc*) gets a trailers-only response: status 200 with
// grpc-status and grpc-message (the reason code) in its only HEADERS frame
// (reason.GRPCStatus maps the reason), its content-type application/grpc or, for
// grpc-web, the request's own (grpcWebType). Any other gets the JSON error body of
// HTTP/1.1 (Exchange.WriteError). After the head went out it aborts instead.
func (s *Stream) WriteError(e *reason.Error, detail string) { s.WriteErrorFields(e, detail, nil) }

// WriteErrorFields is WriteError with the fields of extra added to the head (the plugin
// chain's WWW-Authenticate, Retry-After, CORS fields), except those the error head sets.
func (s *Stream) WriteErrorFields(e *reason.Error, detail string, extra *h1.Header) {
	if s.wroteHead {
		s.Abort()
		return
	}
	id := s.RequestID()
	var h h1.Header
	errorHead(&h, e, id, extra)
	ct, _ := s.Req.Header.Get("Content-Type")
	if web := grpcWebType(ct); web != "" || s.grpc {
		if web == "" {
			web = ctGRPC
		}
		s.grpcErr.set(grpcErrorHead(&h, e, detail, web))
		s.WriteHead(200, nil, &h, h1.LengthNone)
		s.status.Store(int32(e.Status)) // the access log and metrics see the gateway's status
		return
	}
	body := errorBody(e, detail, id)
	h.Add("Content-Type", "application/json")
	s.WriteHead(e.Status, nil, &h, int64(len(body)))
	s.Write(body)
}
