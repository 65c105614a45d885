package h1

import (
	"bufio"
	"io"
	"time"
)

// Framing values for a response writer's content length (server.Exchange.WriteHead and the
// proxy's Downstream) besides a length >= 0.
const (
	// LengthUnknown: the body length is not known up front; HTTP/1.1 chunks the body for
	// HTTP/1.1 clients and delimits it by closing the connection for HTTP/1.0 clients.
	LengthUnknown int64 = -1
	// LengthNone: a response that has no body and no framing field (1xx, 204, 304).
	LengthNone int64 = -2
)

// Response is a parsed response head. Its byte slices point into a buffer owned by the
// Response and stay valid until the next Reset or ReadResponse.
type Response struct {
	Minor  int
	Status int
	Reason []byte
	Header Header
	// ContentLength is the body length; -1 when unknown (chunked or until close); 0 when
	// NoBody.
	ContentLength int64
	Chunked       bool
	// NoBody reports a response without body by RFC 9112 §6.3: to HEAD, 1xx, 204, 304.
	NoBody bool
	// UntilClose reports a body delimited by the connection closing.
	UntilClose bool
	// Close reports that the connection must not be reused after this response
	// (Connection: close, HTTP/1.0 without keep-alive, or UntilClose).
	Close bool
	// KeepAliveTimeout is "Keep-Alive: timeout=N" (seconds); 0 if absent or invalid.
	KeepAliveTimeout time.Duration
	// KeepAliveMax is "Keep-Alive: max=N"; -1 if absent or invalid.
	KeepAliveMax int

	buf []byte
}

// Reset clears r, keeping its buffers for reuse.
func (r *Response) Reset() {
	buf := r.buf[:0]
	r.Header.Reset()
	h := r.Header
	*r = Response{Header: h, buf: buf, KeepAliveMax: -1}
}

// ReadResponse reads one response head from br into r; the body is not read. isHEAD tells
// whether the request was HEAD. 1xx responses are returned like any other, with NoBody set;
// the caller reads again for the final response.
//
// Errors are as for [ReadRequest], except that every [*Error] has Status 502. The upstream
// is trusted a little more than clients: the reason phrase may be missing with its SP, and
// repeated Content-Length values are accepted when identical (RFC 9112 §6.3 item 5). Shapes
// that could desynchronise the connection are refused as for requests.
func ReadResponse(br *bufio.Reader, r *Response, isHEAD bool, lim Limits) error {
	return asUpstream(readResponse(br, r, isHEAD, lim))
}

func readResponse(br *bufio.Reader, r *Response, isHEAD bool, lim Limits) error {
	r.Reset()
	max := lim.maxBytes()
	var err error
	r.buf, err = appendLine(br, r.buf, max)
	if err != nil {
		if err == io.EOF {
			if len(r.buf) == 0 {
				return io.EOF
			}
			return io.ErrUnexpectedEOF
		}
		return err
	}
	if err := checkCRLF(r.buf); err != nil {
		return err
	}
	lineEnd := len(r.buf)
	r.buf, err = readFieldLines(br, r.buf, max-lineEnd, lim.maxFields())
	if err != nil {
		return err
	}
	if err := r.parseStatusLine(r.buf[:lineEnd-2]); err != nil {
		return err
	}
	if err := parseFields(r.buf[lineEnd:], &r.Header); err != nil {
		return err
	}
	return r.frame(isHEAD)
}

// parseStatusLine parses "HTTP-version SP 3DIGIT SP [reason-phrase]" (RFC 9112 §4),
// tolerating a missing SP when the reason is empty.
func (r *Response) parseStatusLine(line []byte) error {
	if len(line) < 12 || line[8] != ' ' {
		return bad("malformed status-line")
	}
	minor, err := parseVersion(line[:8])
	if err != nil {
		return err
	}
	r.Minor = minor
	code := line[9:12]
	if !isDigit(code[0]) || !isDigit(code[1]) || !isDigit(code[2]) || code[0] == '0' {
		return bad("invalid status code")
	}
	r.Status = int(code[0]-'0')*100 + int(code[1]-'0')*10 + int(code[2]-'0')
	rest := line[12:]
	if len(rest) > 0 {
		if rest[0] != ' ' {
			return bad("malformed status-line")
		}
		rest = rest[1:]
		if !validValue(rest) {
			return bad("invalid byte in reason-phrase")
		}
	}
	r.Reason = rest
	return nil
}

// frame derives body framing by RFC 9112 §6.3 and connection reuse from the fields.
func (r *Response) frame(isHEAD bool) error {
	var (
		codings, lengths int
		coding           []byte
		keepAlive        bool
		length           int64 = -1
	)
	for i := range r.Header.Fields {
		f := &r.Header.Fields[i]
		switch {
		case EqualFold(f.Name, "Content-Length"):
			lengths++
			n, ok := ParseLengthList(f.Value)
			if !ok || (length >= 0 && n != length) {
				return bad("invalid or conflicting Content-Length")
			}
			length = n
		case EqualFold(f.Name, "Transfer-Encoding"):
			codings++
			coding = f.Value
		case EqualFold(f.Name, "Connection"):
			r.Close = r.Close || hasToken(f.Value, "close")
			keepAlive = keepAlive || hasToken(f.Value, "keep-alive")
		case EqualFold(f.Name, "Keep-Alive"):
			r.parseKeepAlive(f.Value)
		}
	}
	if r.Minor == 0 && !keepAlive {
		r.Close = true
	}
	switch {
	case codings > 0 && lengths > 0:
		return bad("both Transfer-Encoding and Content-Length")
	case codings > 1:
		return bad("multiple Transfer-Encoding fields")
	case codings == 1 && r.Minor == 0:
		return bad("Transfer-Encoding in HTTP/1.0 response")
	case codings == 1 && !EqualFold(coding, "chunked"):
		return bad("unsupported transfer-coding")
	}
	switch {
	case isHEAD || r.Status < 200 || r.Status == 204 || r.Status == 304:
		r.NoBody = true
	case codings == 1:
		r.Chunked = true
		r.ContentLength = -1
	case lengths > 0:
		r.ContentLength = length
	default:
		r.UntilClose = true
		r.ContentLength = -1
		r.Close = true
	}
	return nil
}

// ParseLengthList parses a Content-Length value, allowing a list of identical values. The
// HTTP/2 upstream client uses it too, so that both protocols take the same lengths.
func ParseLengthList(v []byte) (int64, bool) {
	n := int64(-1)
	for rest := v; rest != nil; {
		var e []byte
		e, rest = nextElement(rest)
		m, ok := ParseDigits(e)
		if !ok || (n >= 0 && m != n) {
			return 0, false
		}
		n = m
	}
	return n, true
}

// parseKeepAlive reads timeout and max from a Keep-Alive value such as
// "timeout=5, max=100" (RFC 2068 §19.7.1.1). Names are case-insensitive; unknown or
// malformed parameters are ignored. The first valid (for timeout: non-zero) occurrence of
// each wins.
func (r *Response) parseKeepAlive(v []byte) {
	for rest := v; rest != nil; {
		var e []byte
		e, rest = nextElement(rest)
		eq := -1
		for i, c := range e {
			if c == '=' {
				eq = i
				break
			}
		}
		if eq < 0 {
			continue
		}
		name, val := trimOWS(e[:eq]), trimOWS(e[eq+1:])
		n, ok := ParseDigits(val)
		if !ok || n > 1<<31-1 {
			continue
		}
		switch {
		case EqualFold(name, "timeout") && r.KeepAliveTimeout == 0:
			r.KeepAliveTimeout = time.Duration(n) * time.Second
		case EqualFold(name, "max") && r.KeepAliveMax < 0:
			r.KeepAliveMax = int(n)
		}
	}
}
