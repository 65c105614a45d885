package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"

	"sync/atomic"
	"time"

	"sluice/internal/h1"
	"sluice/internal/netio"
	"sluice/internal/reason"
)

// ErrBodyTooLarge is returned by the request body reader when the body exceeds the limit. It
// is the 413 the gateway answers with.
var ErrBodyTooLarge = reason.New(413, reason.BodyTooLarge, "", errors.New("request body larger than the configured limit"))

// errHeadWritten is returned when a handler writes a second head.
var errHeadWritten = errors.New("response head already written")

// Exchange is one request and its response on a client connection. It is reused for the
// connection's next request: handlers must not keep it after ServeH1 returns.
type Exchange struct {
	Req   h1.Request
	Start time.Time

	c         *conn
	body      h1.BodyReader
	bodyLimit int64
	bodyRead  int64
	bodyErr   error
	sent100   bool
	reqID     []byte   // RequestIDBytes; nil until asked
	idBuf     [32]byte // a generated id's bytes

	wroteHead  bool
	status     int
	chunked    bool
	noBody     bool
	untilClose bool
	declared   int64
	bytesOut   int64
	headBytes  int64 // the response head's bytes, for the access log's bytes_sent
	splicedIn  int64 // request body bytes moved with splice(2)
	splicedOut int64 // response body bytes moved with splice(2)
	closeAfter bool
	aborted    bool
	tunneled   bool // the connection was handed over (Tunnel)
	chunkW     h1.ChunkedWriter
	scratch    []byte

	// droppedHeaders and droppedTrailers count request fields removed for their names'
	// underscores (Settings.Underscores).
	droppedHeaders, droppedTrailers int

	// grpcErr is the grpc-status of the gateway's own grpc-web error answer.
	grpcErr errorGRPCStatus
}

func (ex *Exchange) reset() {
	ex.Req.Reset()
	ex.bodyRead, ex.bodyErr, ex.sent100, ex.reqID = 0, nil, false, nil
	ex.wroteHead, ex.status, ex.chunked, ex.noBody, ex.untilClose = false, 0, false, false, false
	ex.headBytes = 0
	ex.declared, ex.bytesOut, ex.closeAfter, ex.aborted, ex.tunneled = 0, 0, false, false, false
	ex.splicedIn, ex.splicedOut = 0, 0
	ex.droppedHeaders, ex.droppedTrailers = 0, 0
	ex.grpcErr = 0
}

func (ex *Exchange) start() {
	ex.bodyLimit = ex.c.st.MaxBodyBytes
	ex.body.Reset(ex.c.br, ex.Req.ContentLength, ex.Req.Chunked, 0)
	if ex.Req.Close || ex.c.srv.closing.Load() {
		ex.closeAfter = true
	}
}

// Request is the parsed request head (Req).
func (ex *Exchange) Request() *h1.Request { return &ex.Req }

// StartTime is when the request began to arrive (Start): when its first byte was read, or
// when the server took it up if it was already buffered (pipelined).
func (ex *Exchange) StartTime() time.Time { return ex.Start }

// Proto is the request's HTTP version as the access log shows it: "HTTP/1.0" or "HTTP/1.1",
// or "" for a request refused before its version was read (a head too large or too slow, a
// version other than 1.0 and 1.1): the log leaves the field out rather than guess.
func (ex *Exchange) Proto() string {
	if !ex.Req.HasVersion() {
		return ""
	}
	if ex.Req.Minor == 0 {
		return "HTTP/1.0"
	}
	return "HTTP/1.1"
}

// Context is the request's context: it is canceled when the client is found gone or the
// shutdown grace period ends, with a *reason.Error cause that says which. It is the
// connection's, so it covers each of its requests in turn (one at a time) and costs a
// request nothing.
func (ex *Exchange) Context() context.Context { return ex.c.ctx }

// OnCancel makes f run once when the request's context is canceled (at once if it already
// is), until it is replaced; nil removes it. Unlike context.AfterFunc it allocates nothing.
func (ex *Exchange) OnCancel(f func()) { ex.c.setOnCancel(f) }

// TLS is the state of the client connection's TLS session, or nil over plain TCP.
func (ex *Exchange) TLS() *tls.ConnectionState { return ex.c.tls }

// ClientSubject is the subject of the client's verified certificate, "" without one
// ([Served]).
func (ex *Exchange) ClientSubject() string { return ex.c.clientSubject }

// ClientIP is the client's address without the port.
func (ex *Exchange) ClientIP() string { return ex.c.clientIP }

// LocalAddr is the listener-side address of the connection.
func (ex *Exchange) LocalAddr() net.Addr { return ex.c.nc.LocalAddr() }

// ListenerName names the listener that accepted the connection.
func (ex *Exchange) ListenerName() string { return ex.c.st.Name }

// ConnRequests is how many requests this client connection carried before this one.
func (ex *Exchange) ConnRequests() int64 { return ex.c.served.Load() }

var (
	idPrefix  = newIDPrefix()
	idCounter atomic.Uint64
)

func newIDPrefix() string {
	var b [6]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// RequestID returns the client's X-Request-Id when it is a sane token, else a new unique id.
func (ex *Exchange) RequestID() string {
	return string(ex.RequestIDBytes())
}

// RequestIDBytes is RequestID without making a string: the bytes live in the request head or
// the Exchange and are valid until the exchange ends. The data path (forwarded header,
// response header, access log) uses it, so an id costs no allocation.
func (ex *Exchange) RequestIDBytes() []byte {
	if ex.reqID == nil {
		ex.reqID = requestID(&ex.Req.Header, &ex.idBuf)
	}
	return ex.reqID
}

// requestID is the client's X-Request-Id in h when it is sane, else a new id made in buf.
func requestID(h *h1.Header, buf *[32]byte) []byte {
	if v, ok := h.Get("X-Request-Id"); ok && validRequestID(v) {
		return v
	}
	b := append(buf[:0], idPrefix...)
	b = append(b, '-')
	return strconv.AppendUint(b, idCounter.Add(1), 36)
}

func validRequestID(v []byte) bool {
	if len(v) == 0 || len(v) > 200 {
		return false
	}
	for _, c := range v {
		if c <= ' ' || c >= 0x7f {
			return false
		}
	}
	return true
}

// SetBodyLimit lowers the request body limit for this request (0 keeps the listener's).
func (ex *Exchange) SetBodyLimit(n int64) {
	if n > 0 && (ex.bodyLimit == 0 || n < ex.bodyLimit) {
		ex.bodyLimit = n
	}
}

// BodyLimit is the effective request body limit (0: unlimited).
func (ex *Exchange) BodyLimit() int64 { return ex.bodyLimit }

// HasBody reports whether the request has a body (declared length > 0 or chunked).
func (ex *Exchange) HasBody() bool { return ex.Req.Chunked || ex.Req.ContentLength > 0 }

// BodyBytes is the number of request body bytes read so far.
func (ex *Exchange) BodyBytes() int64 { return ex.bodyRead }

// BodyTrailer returns the trailer fields of a chunked request body, after it was fully read.
// Fields whose name holds "_" are removed unless the listener allows them.
func (ex *Exchange) BodyTrailer() *h1.Header {
	tr := ex.body.Trailer()
	if ex.c.st.Underscores != UnderscoresAllow && len(tr.Fields) > 0 {
		ex.droppedTrailers += tr.RemoveFunc(hasUnderscore)
	}
	return tr
}

// DroppedFields returns how many request header and trailer fields were removed for the
// underscores in their names (Settings.Underscores).
func (ex *Exchange) DroppedFields() (header, trailer int) {
	return ex.droppedHeaders, ex.droppedTrailers
}

// ErrorGRPCStatus is the grpc-status of the gateway's own grpc-web error answer ([Served]).
func (ex *Exchange) ErrorGRPCStatus() (code int, ok bool) {
	return ex.grpcErr.get()
}

// ReadBody reads the request body. The first read answers "Expect: 100-continue". Each read is
// bounded by the listener's read timeout; a body above the limit fails with ErrBodyTooLarge.
func (ex *Exchange) ReadBody(p []byte) (int, error) {
	if ex.bodyErr != nil {
		return 0, ex.bodyErr
	}
	if !ex.HasBody() {
		return 0, io.EOF
	}
	if ex.Req.Expect100 && !ex.sent100 {
		ex.sent100 = true
		if ex.c.br.Buffered() == 0 {
			ex.c.setWriteDeadline()
			ex.c.bw.WriteString("HTTP/1.1 100 Continue\r\n\r\n")
			if err := ex.c.bw.Flush(); err != nil {
				ex.bodyErr = err
				return 0, err
			}
		}
	}
	ex.c.setReadDeadline(ex.c.st.ReadTimeout)
	n, err := ex.body.Read(p)
	ex.bodyRead += int64(n)
	if ex.bodyLimit > 0 && ex.bodyRead > ex.bodyLimit {
		ex.bodyErr = ErrBodyTooLarge
		ex.closeAfter = true
		return 0, ErrBodyTooLarge
	}
	if err != nil && err != io.EOF {
		ex.bodyErr = err
		ex.closeAfter = true
	}
	return n, err
}

// BodyToSplice returns how many request body bytes SpliceBodyTo would move now: the rest of
// a Content-Length body when none of it is buffered, or 0 when it cannot (no splice(2) here,
// a TLS or non-TCP client, bytes buffered, a chunked body, a 100 Continue not sent yet, or a
// body limit the rest would pass: the copy loop then reports it).
func (ex *Exchange) BodyToSplice() int64 {
	c := ex.c
	if !netio.SpliceSupported || c.nio == nil || ex.bodyErr != nil || (ex.Req.Expect100 && !ex.sent100) {
		return 0
	}
	n := ex.body.Direct()
	if ex.bodyLimit > 0 && ex.bodyRead+n > ex.bodyLimit {
		return 0
	}
	return n
}

// SpliceBodyTo moves the BodyToSplice bytes from the client's socket straight to dst
// (netio.Splice). ok is false, and nothing was moved, when it could not start. armWrite runs
// before each wait on dst; the client's waits get the listener's read timeout. After a short
// move the client connection is closed after the answer: the body is not all read, and what
// the pipe held is lost.
func (ex *Exchange) SpliceBodyTo(dst *netio.Conn, armWrite func()) (s netio.Spliced, ok bool) {
	c := ex.c
	n := ex.BodyToSplice()
	if n == 0 {
		return s, false
	}
	s, ok = netio.Splice(dst, c.nio, n, func() { c.setReadDeadline(c.st.ReadTimeout) }, armWrite)
	if !ok {
		return s, false
	}
	ex.body.Moved(s.Taken)
	ex.bodyRead += s.Taken
	ex.splicedIn += s.Moved
	if err := s.Err(); err != nil {
		ex.bodyErr = err
		ex.closeAfter = true
	}
	return s, true
}

// WatchBody makes the waits for request body bytes (ReadBody, SpliceBodyTo) run f between
// steps (proxy.BodyWatcher; netio.Conn.Watch): false stops the wait, the read fails with
// netio.ErrWatchStopped, and the connection closes after the response. Over TLS the watch is
// on the socket under crypto/tls: its waits for the next record's bytes are watched, and a
// stop reaches crypto/tls as a temporary failure (tlsSocket.Read), so the response still goes
// out and the lingering close still reads what the client sends. A socket that is not a
// netio.Conn is not watched.
func (ex *Exchange) WatchBody(f func() bool, first, max time.Duration) {
	if s := ex.c.holdSock(); s != nil {
		s.Watch(f, first, max)
	}
}

// Body returns the request body as an io.Reader (see ReadBody).
func (ex *Exchange) Body() io.Reader { return bodyReader{ex} }

type bodyReader struct{ ex *Exchange }

func (b bodyReader) Read(p []byte) (int, error) { return b.ex.ReadBody(p) }

// BodyPending reports whether a ReadBody would return without waiting for the client: body
// bytes (not just chunk framing), the body's end or an error are at hand.
func (ex *Exchange) BodyPending() bool { return ex.bodyErr != nil || !ex.HasBody() || ex.body.Ready() }

func (ex *Exchange) bodyDone() bool { return !ex.HasBody() || ex.body.Done() }

// CloseAfter makes the connection close after this response.
func (ex *Exchange) CloseAfter() { ex.closeAfter = true }

// Status is the status written, 0 before WriteHead.
func (ex *Exchange) Status() int { return ex.status }

// BytesOut is the number of response body bytes written.
func (ex *Exchange) BytesOut() int64 { return ex.bytesOut }

// BytesSent is the number of response bytes written to the client: the head and the body
// (chunked framing not counted).
func (ex *Exchange) BytesSent() int64 { return ex.headBytes + ex.bytesOut }

// SplicedBytes returns how many request and response body bytes went socket to socket
// ([Exchange.SpliceBodyTo], [Exchange.SpliceFrom]).
func (ex *Exchange) SplicedBytes() (request, response int64) { return ex.splicedIn, ex.splicedOut }

// WriteHead writes the status line and header fields h, then the framing for contentLength:
// a length >= 0 writes Content-Length, h1.LengthUnknown chunks (or closes, for HTTP/1.0), h1.LengthNone
// writes neither. A HEAD request never gets a body, whatever the framing says.
func (ex *Exchange) WriteHead(status int, reasonPhrase []byte, h *h1.Header, contentLength int64) error {
	if ex.wroteHead {
		return errHeadWritten
	}
	ex.wroteHead, ex.status, ex.declared = true, status, contentLength
	isHEAD := string(ex.Req.Method) == "HEAD"
	ex.noBody = isHEAD || contentLength == h1.LengthNone
	if !ex.bodyDone() && (!ex.Req.Expect100 || ex.sent100) {
		// The body is still coming; do not let a long unread body pin the connection.
		if ex.Req.Chunked || ex.Req.ContentLength-ex.bodyRead > maxDrain {
			ex.closeAfter = true
		}
	}
	if ex.Req.Expect100 && !ex.sent100 && ex.HasBody() {
		ex.closeAfter = true // we answered without asking for the body
	}
	b := appendHead(ex.scratch[:0], status, reasonPhrase, h)
	if needsDate(status, h) { // date.go
		b = append(b, "Date: "...)
		b = append(b, httpDate(time.Now())...)
		b = append(b, "\r\n"...)
	}
	switch {
	case contentLength >= 0:
		b = append(b, "Content-Length: "...)
		b = strconv.AppendInt(b, contentLength, 10)
		b = append(b, "\r\n"...)
	case contentLength == h1.LengthUnknown && !isHEAD:
		if ex.Req.Minor >= 1 {
			ex.chunked = true
			b = append(b, "Transfer-Encoding: chunked\r\n"...)
		} else {
			ex.untilClose = true
			ex.closeAfter = true
		}
	}
	switch {
	case status == 101:
		// Switching Protocols: the handler's fields say Connection: Upgrade; the connection
		// then belongs to the new protocol (Tunnel).
	case ex.closeAfter:
		b = append(b, "Connection: close\r\n"...)
	case ex.Req.Minor == 0:
		b = append(b, "Connection: keep-alive\r\n"...)
	}
	b = append(b, "\r\n"...)
	ex.scratch = b
	ex.headBytes = int64(len(b))
	if len(b) > ex.c.bw.Available() {
		ex.c.setWriteDeadline() // this write reaches the socket; otherwise Flush arms it
	}
	_, err := ex.c.bw.Write(b)
	if ex.chunked {
		ex.chunkW.Reset(ex.c.bw)
	}
	return err
}

// WriteInterim sends an interim (1xx) response head with fields h now (proxy.InterimWriter).
// It does not count as the response head: WriteHead follows. HTTP/1.0 clients get none
// (RFC 9110 §15.2), nor does anyone a 101 (the upgrade path writes that as the head) or
// anything after the head.
func (ex *Exchange) WriteInterim(status int, reasonPhrase []byte, h *h1.Header) (bool, error) {
	if ex.Req.Minor == 0 || ex.wroteHead || status < 100 || status > 199 || status == 101 {
		return false, nil
	}
	b := append(appendHead(ex.scratch[:0], status, reasonPhrase, h), "\r\n"...)
	ex.scratch = b
	ex.c.setWriteDeadline()
	if _, err := ex.c.bw.Write(b); err != nil {
		return false, err
	}
	if err := ex.c.bw.Flush(); err != nil {
		return false, err
	}
	return true, nil
}

// appendHead appends the status line and fields h (nil: none) of a response head to b,
// without the empty line that ends it.
func appendHead(b []byte, status int, reasonPhrase []byte, h *h1.Header) []byte {
	b = append(b, "HTTP/1.1 "...)
	b = strconv.AppendInt(b, int64(status), 10)
	b = append(b, ' ')
	if len(reasonPhrase) == 0 {
		reasonPhrase = []byte(statusText(status))
	}
	b = append(b, reasonPhrase...)
	b = append(b, "\r\n"...)
	if h != nil {
		b = h.AppendTo(b)
	}
	return b
}

// Write writes response body bytes (buffered; see Flush).
func (ex *Exchange) Write(p []byte) (int, error) {
	if !ex.wroteHead {
		return 0, errors.New("response body written before head")
	}
	if ex.noBody || len(p) == 0 {
		return len(p), nil
	}
	var n int
	var err error
	if len(p)+chunkOverhead > ex.c.bw.Available() {
		ex.c.setWriteDeadline() // bufio writes to the socket before this returns
	}
	if ex.chunked {
		n, err = ex.chunkW.Write(p)
	} else {
		if ex.declared >= 0 && ex.bytesOut+int64(len(p)) > ex.declared {
			return 0, errors.New("response body longer than its Content-Length")
		}
		n, err = ex.c.bw.Write(p)
	}
	ex.bytesOut += int64(n)
	return n, err
}

// SpliceFrom moves the next n bytes of the response body from src straight to the client's
// socket (netio.Splice: they never cross user memory), after flushing what is buffered. ok
// is false, and nothing was moved, when the exchange cannot take raw body bytes (no
// splice(2) here, a TLS or non-TCP client connection, a chunked or unknown-length body, more
// bytes than the Content-Length has left) or the splice could not start. armRead runs
// before each wait on src.
func (ex *Exchange) SpliceFrom(src *netio.Conn, n int64, armRead func()) (s netio.Spliced, ok bool) {
	c := ex.c
	if !netio.SpliceSupported || c.nio == nil || !ex.wroteHead || ex.noBody || ex.chunked || ex.declared < 0 || ex.bytesOut+n > ex.declared {
		return s, false
	}
	if err := ex.Flush(); err != nil {
		return netio.Spliced{WriteErr: err}, true
	}
	if s, ok = netio.Splice(c.nio, src, n, armRead, c.setWriteDeadline); !ok {
		return s, false
	}
	ex.bytesOut += s.Moved
	ex.splicedOut += s.Moved
	return s, true
}

// Tunnel implements the proxy's Tunneler: after a 101 head, it flushes the head and hands
// over the connection, with a reader that returns what the client already sent first. The
// connection closes when the handler returns.
func (ex *Exchange) Tunnel() (net.Conn, io.Reader, error) {
	if ex.status != 101 {
		return nil, nil, errors.New("tunnel without a 101 response")
	}
	ex.tunneled, ex.closeAfter = true, true
	if err := ex.Flush(); err != nil {
		return nil, nil, err
	}
	return ex.c.rw, ex.c.br, nil
}

// Flush sends buffered response bytes to the client now, except the last ones of a
// response that is complete and will be followed by the next request: finish leaves those to
// the wait for that request, which sends them in the same poller call (see holdable).
func (ex *Exchange) Flush() error {
	if ex.holdable() {
		return nil
	}
	return ex.flushNow()
}

func (ex *Exchange) flushNow() error {
	if ex.c.bw.Buffered() > 0 {
		ex.c.setWriteDeadline()
	}
	return ex.c.bw.Flush()
}

// holdable reports whether the response is complete (head written, a declared body all
// written, or none) on a TCP connection, plain or TLS, that stays open: its last bytes can
// wait in the buffer for waitNextRequest, which sends them inside the wait for the next
// request (netio.Conn.HoldNextWrite, HoldWrites), so that wait needs no read that finds
// nothing first.
func (ex *Exchange) holdable() bool {
	return ex.c.holdSock() != nil && ex.wroteHead && !ex.chunked && !ex.tunneled && !ex.aborted &&
		!ex.closeAfter && !ex.untilClose && (ex.noBody || ex.declared >= 0 && ex.bytesOut == ex.declared)
}

// chunkOverhead bounds what the chunked coding adds around a Write's bytes (size line and
// CRLF).
const chunkOverhead = 20

// Finish ends a chunked body with trailer fields (nil for none). Other framings need no end.
func (ex *Exchange) Finish(trailer *h1.Header) error {
	if ex.chunked && !ex.aborted {
		ex.chunked = false
		ex.c.setWriteDeadline() // trailer fields may overflow the buffer and write through
		return ex.chunkW.Close(trailer)
	}
	return nil
}

// finish completes the exchange after the handler and reports whether the connection can
// carry another request.
func (ex *Exchange) finish() bool {
	c := ex.c
	if ex.tunneled {
		return false // the tunnel's end closed it; nothing more is written
	}
	if !ex.wroteHead && !ex.aborted {
		ex.WriteError(reason.New(502, reason.InternalError, "", errors.New("handler wrote no response")), "")
	}
	complete := !ex.aborted
	if ex.chunked && !ex.aborted {
		if err := ex.Finish(nil); err != nil {
			complete = false
		}
	}
	if !ex.noBody && ex.declared >= 0 && ex.bytesOut != ex.declared {
		complete = false // truncated: closing tells the client the body is incomplete
	}
	if complete && ex.holdable() && ex.bodyDone() && !c.srv.closing.Load() {
		return true // the response stays buffered: waitNextRequest sends it
	}
	if err := ex.flushNow(); err != nil {
		return false
	}
	if !complete || ex.closeAfter || ex.untilClose || c.srv.closing.Load() {
		return false
	}
	return c.discardBody(ex)
}

// WriteError answers with a gateway-generated error: the status, an X-Sluice-Error header with
// the reason code, and a small JSON body. detail goes into the body's "detail" field, with
// e.Target as "target"; pass "" to keep internals (causes, addresses) from clients
// (errors.expose_details, docs/errors.md). A grpc-web request (content-type
// application/grpc-web*) gets a trailers-only grpc-web answer instead, as over HTTP/2:
// status 200, its own content-type, grpc-status and grpc-message in the head,
// Content-Length: 0 (grpcErrorHead). After the head went out it aborts the response
// instead.
func (ex *Exchange) WriteError(e *reason.Error, detail string) { ex.WriteErrorFields(e, detail, nil) }

// WriteErrorFields is WriteError with the fields of extra added to the head (the plugin
// chain's WWW-Authenticate, Retry-After, CORS fields), except those the error head sets.
func (ex *Exchange) WriteErrorFields(e *reason.Error, detail string, extra *h1.Header) {
	if ex.wroteHead {
		ex.Abort()
		return
	}
	id := ex.RequestID()
	var h h1.Header
	if ct, _ := ex.Req.Header.Get("Content-Type"); len(ct) > 0 {
		if web := grpcWebType(ct); web != "" {
			errorHead(&h, e, id, extra)
			ex.grpcErr.set(grpcErrorHead(&h, e, detail, web))
			ex.WriteHead(200, nil, &h, 0)
			ex.status = e.Status // the access log and metrics see the gateway's status
			return
		}
	}
	body := errorBody(e, detail, id)
	h.Add("Content-Type", "application/json")
	errorHead(&h, e, id, extra)
	ex.WriteHead(e.Status, nil, &h, int64(len(body)))
	ex.Write(body)
}

// errorHead adds the fields of a gateway-generated error's head to h (after any it already
// has): the reason, the request id, Retry-After on a 503 unless extra has one, and extra's
// fields except those the error head sets itself. Shared by HTTP/1.1 and HTTP/2.
func errorHead(h *h1.Header, e *reason.Error, id string, extra *h1.Header) {
	h.Add("X-Sluice-Error", string(e.Code))
	h.Add("X-Request-Id", id)
	if e.Status == 503 && (extra == nil || !extra.Has("Retry-After")) {
		h.Add("Retry-After", "1")
	}
	if extra != nil {
		for _, f := range extra.Fields {
			if !errorHeadField(f.Name) {
				h.Fields = append(h.Fields, f)
			}
		}
	}
}

// errorBody is the JSON body of a gateway-generated error (see Exchange.WriteError).
func errorBody(e *reason.Error, detail, id string) []byte {
	body := make([]byte, 0, 160)
	body = append(body, `{"error":`...)
	body = strconv.AppendQuote(body, string(e.Code))
	body = append(body, `,"status":`...)
	body = strconv.AppendInt(body, int64(e.Status), 10)
	body = append(body, `,"message":`...)
	body = strconv.AppendQuote(body, reason.Describe(e.Code))
	if detail != "" {
		body = append(body, `,"detail":`...)
		body = strconv.AppendQuote(body, detail)
	}
	if detail != "" && e.Target != "" {
		body = append(body, `,"target":`...)
		body = strconv.AppendQuote(body, e.Target)
	}
	body = append(body, `,"request_id":`...)
	body = strconv.AppendQuote(body, id)
	return append(body, "}\n"...)
}

// errorHeadField reports the fields an error head sets itself.
func errorHeadField(name []byte) bool {
	for _, s := range [...]string{"Content-Type", "Content-Length", "X-Sluice-Error", "X-Request-Id"} {
		if h1.EqualFold(name, s) {
			return true
		}
	}
	return false
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return t
	}
	return "Status"
}
