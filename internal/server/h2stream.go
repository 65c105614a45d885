package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/h1"
	"sluice/internal/reason"
)

// Stream is one HTTP/2 request and its response: the proxy's Downstream for HTTP/2, as
// [Exchange] is for HTTP/1.1. The request head is an h1.Request view of the HTTP/2 one
// (pseudo-header fields become the method, Host, path and query; a body without a declared
// length is framed as chunked for an HTTP/1.1 upstream), so routes, rewrites and the proxy
// treat both alike.
//
// Full duplex: the request side (ReadBody, BodyPending, BodyTrailer, SetBodyLimit) and the
// response side (WriteHead, Write, Flush, Finish, Abort, WriteError) touch disjoint state,
// so one goroutine may read the request body while another writes the response, as a gRPC
// bidirectional stream needs. Each side is used by one goroutine at a time; Context,
// ClientGone, OnCancel and the accounting methods are safe from any.
//
// A Stream is pooled: handlers must not keep it after ServeH2 returns.
type Stream struct {
	Req   h1.Request
	Start time.Time

	h   *h2Conn
	buf []byte // the bytes Req's slices point into

	ctx      *streamCtx // a new one per stream (h2ctx.go)
	mu       sync.Mutex // guards onCancel
	onCancel func()

	grpc  bool
	reqID []byte
	// subject is the connection's client certificate subject when the stream began, and
	// distrust why its certificate failed the listener's changed policy (set by the read
	// loop: checkClient in clientauth.go).
	subject  string
	distrust error
	idBuf    [32]byte

	// Request side.
	bodyLimit int64
	bodyRead  atomic.Int64
	bodyErr   error
	trailer   h1.Header

	// Response side.
	wroteHead  bool
	status     atomic.Int32
	noBody     bool
	declared   int64
	bytesOut   atomic.Int64
	headBytes  atomic.Int64
	aborted    bool
	writeErr   error
	droppedHdr int
	droppedTr  atomic.Int32
	grpcErr    errorGRPCStatus // the grpc-status of the gateway's own error answer

	x ownStream // the connection-side state (h2ownstream.go)
}

var streamPool = sync.Pool{New: func() any { return new(Stream) }}

// release puts the Stream back in its pool (its buffers kept).
func (s *Stream) release() {
	s.ctx.end(nil)
	s.Req.Reset()
	s.trailer.Reset()
	keep := s.x.keep()
	buf, req, tr := s.buf[:0], s.Req, s.trailer
	*s = Stream{Req: req, trailer: tr, buf: buf}
	s.x.restore(keep)
	streamPool.Put(s)
}

// admit applies the listener's rules to the request before the handler sees it (a client
// certificate no longer trusted, max_header_bytes, max_headers, underscores_in_headers). It reports false when the
// request was refused (answered, logged and counted through the Rejecter).
func (s *Stream) admit() bool {
	st := s.h.c.st
	h := &s.Req.Header
	if s.distrust != nil {
		return s.refuse(421, reason.ClientCertNoLongerTrusted, untrustedDetail(s.distrust))
	}
	// The header list size as RFC 9113 §6.5.2 counts it: name, value and 32 per field.
	size := s.x.listSize
	if s.x.big {
		s.h.limit(LimitHeaderList, size, false)
	}
	switch {
	case size > st.Limits.MaxHeaderBytes:
		return s.refuse(431, reason.HeaderTooLarge, "header list of "+strconv.Itoa(size)+" bytes above max_header_bytes")
	case st.Limits.MaxHeaders > 0 && len(h.Fields) > st.Limits.MaxHeaders:
		return s.refuse(431, reason.HeaderTooLarge, "too many header fields")
	case string(s.Req.Method) == "CONNECT":
		return s.refuse(501, reason.NotImplemented, "CONNECT over HTTP/2 is not supported")
	}
	// :method, :path, :authority: the request-line and Host an HTTP/1.1 upstream gets. A type
	// assertion, not errors.As, whose target would move to the heap for every stream.
	if err := s.Req.CheckControl(); err != nil {
		msg := "invalid request control data"
		if pe, ok := err.(*h1.Error); ok {
			msg = pe.Reason
		}
		return s.refuse(400, reason.BadRequest, msg)
	}
	if s.Req.Host == nil {
		// Neither :authority nor host (RFC 9110 §7.2: a request must carry one), as an
		// HTTP/1.1 request without Host is refused. An empty one is kept: it stands for a
		// target without authority, as an empty Host field does.
		return s.refuse(400, reason.BadRequest, "missing :authority and host")
	}
	if st.Underscores == UnderscoresAllow {
		return true
	}
	n := 0
	for i := range h.Fields {
		if hasUnderscore(&h.Fields[i]) {
			n++
		}
	}
	if n > 0 && st.Underscores == UnderscoresReject {
		return s.refuse(400, reason.UnderscoreInHeader, "header field name with an underscore")
	}
	s.droppedHdr = h.RemoveFunc(hasUnderscore)
	return true
}

func (s *Stream) refuse(status int, code reason.Code, why string) bool {
	shown := ""
	if s.h.c.st.ExposeDetails {
		shown = why
	}
	s.WriteError(&reason.Error{Status: status, Code: code, Err: errors.New(why)}, shown)
	if r, ok := s.h.c.srv.handler.(Rejecter); ok {
		r.Rejected(s, code, why)
	}
	return false
}

// end completes the stream after the handler and reports whether it must be reset.
func (s *Stream) end() (reset bool) {
	if !s.wroteHead && !s.aborted {
		s.WriteError(reason.New(502, reason.InternalError, "", errors.New("handler wrote no response")), "")
	}
	if s.aborted || s.writeErr != nil {
		return true
	}
	if !s.noBody && s.declared >= 0 && s.bytesOut.Load() != s.declared {
		return true // truncated: the reset tells the client the body is incomplete
	}
	return false
}

// Request is the request head, as an HTTP/1.1 one (see Stream).
func (s *Stream) Request() *h1.Request { return &s.Req }

// StartTime is when the stream's request head began to arrive (its HEADERS frame was read).
func (s *Stream) StartTime() time.Time { return s.Start }

// Proto is "HTTP/2".
func (s *Stream) Proto() string { return "HTTP/2" }

// ListenerName names the listener that accepted the connection.
func (s *Stream) ListenerName() string { return s.h.c.st.Name }

// ClientIP is the client's address without the port.
func (s *Stream) ClientIP() string { return s.h.c.clientIP }

// TLS is the client connection's TLS state, nil for h2c.
func (s *Stream) TLS() *tls.ConnectionState { return s.h.c.tls }

// ClientSubject is the subject of the client's verified certificate, "" without one
// ([Served]).
func (s *Stream) ClientSubject() string { return s.subject }

// RequestIDBytes is the request's id: the client's X-Request-Id when sane, else a new one.
func (s *Stream) RequestIDBytes() []byte {
	if s.reqID == nil {
		s.reqID = requestID(&s.Req.Header, &s.idBuf)
	}
	return s.reqID
}

// RequestID is RequestIDBytes as a string.
func (s *Stream) RequestID() string { return string(s.RequestIDBytes()) }

// Context is canceled when the client resets the stream or its connection ends, with a
// *reason.Error cause (client gone, or the connection's: a forced shutdown).
func (s *Stream) Context() context.Context { return s.ctx }

// OnCancel makes f run once when the Context is canceled (at once if it already is), until
// it is replaced; nil removes it (proxy.CancelNotifier).
func (s *Stream) OnCancel(f func()) {
	s.mu.Lock()
	if f != nil && s.ctx.Err() != nil {
		s.onCancel = nil
		s.mu.Unlock()
		f()
		return
	}
	s.onCancel = f
	s.mu.Unlock()
}

// ClientGone reports whether the client reset the stream or left.
func (s *Stream) ClientGone() bool { return s.ctx.Err() != nil }

// CloseAfter does nothing: an HTTP/2 connection carries other streams, and a stream ends
// with its response.
func (s *Stream) CloseAfter() {}

// SetBodyLimit lowers the request body limit for this request (0 keeps the listener's).
func (s *Stream) SetBodyLimit(n int64) {
	if n > 0 && (s.bodyLimit == 0 || n < s.bodyLimit) {
		s.bodyLimit = n
	}
}

// BodyLimit is the request body limit in force (0: none).
func (s *Stream) BodyLimit() int64 { return s.bodyLimit }

// ReadBody reads the request body (io.EOF at its end), giving the flow-control windows
// back as it goes and answering "Expect: 100-continue" before its first wait. Each read waits at most the listener's
// read_timeout; a body above the limit fails with ErrBodyTooLarge (and the stream is
// reset after the answer, telling the client to stop).
func (s *Stream) ReadBody(p []byte) (int, error) {
	if s.bodyErr != nil {
		return 0, s.bodyErr
	}
	if !s.Req.Chunked && s.Req.ContentLength == 0 {
		return 0, io.EOF
	}
	n, err := s.readOwn(p)
	read := s.bodyRead.Add(int64(n))
	if s.bodyLimit > 0 && read > s.bodyLimit {
		s.bodyErr = ErrBodyTooLarge
		return 0, ErrBodyTooLarge
	}
	if err == io.EOF {
		s.copyOwnTrailer()
		s.bodyErr = io.EOF
	} else if err != nil {
		s.bodyErr = err
	}
	return n, err
}

// BodyPending reports whether a ReadBody would not wait: body bytes or the body's end are
// at hand.
func (s *Stream) BodyPending() bool {
	if s.bodyErr != nil || !s.Req.Chunked && s.Req.ContentLength == 0 {
		return true
	}
	s.x.rmu.Lock()
	ready := s.x.boff < len(s.x.body) || s.x.rerr != nil
	s.x.rmu.Unlock()
	return ready
}

// BodyTrailer is the trailer section of the request body, once it was read to its end.
func (s *Stream) BodyTrailer() *h1.Header { return &s.trailer }

// BodyBytes is the number of request body bytes read so far.
func (s *Stream) BodyBytes() int64 { return s.bodyRead.Load() }

// DroppedFields returns how many request header and trailer fields were removed for the
// underscores in their names.
func (s *Stream) DroppedFields() (header, trailer int) {
	return s.droppedHdr, int(s.droppedTr.Load())
}

// ErrorGRPCStatus is the grpc-status of the gateway's own gRPC error answer ([Served]).
func (s *Stream) ErrorGRPCStatus() (code int, ok bool) {
	return s.grpcErr.get()
}

// SplicedBytes is zero: HTTP/2 frames never splice.
func (s *Stream) SplicedBytes() (request, response int64) { return 0, 0 }

// Status is the status written, 0 before WriteHead.
func (s *Stream) Status() int { return int(s.status.Load()) }

// BytesOut is the number of response body bytes written.
func (s *Stream) BytesOut() int64 { return s.bytesOut.Load() }

// BytesSent is the response's bytes: its header fields as HTTP/1.1 would count them (not
// their HPACK-encoded size) and its body.
func (s *Stream) BytesSent() int64 { return s.headBytes.Load() + s.bytesOut.Load() }
