package h1

import (
	"bufio"
	"bytes"
	"io"
)

// maxLeadingEmptyLines bounds the empty lines skipped before a request-line
// (RFC 9112 §2.2 asks servers to ignore at least one).
const maxLeadingEmptyLines = 4

// Request is a parsed request head. Its byte slices point into a buffer owned by the
// Request and stay valid until the next Reset or ReadRequest; reuse one Request per
// connection to read without allocating.
type Request struct {
	Method []byte
	// Target is the request-target exactly as received.
	Target []byte
	// Path is the path of origin-form or absolute-form ("/" when absolute-form has none),
	// or "*" for asterisk-form.
	Path []byte
	// Query follows '?' in the target, without it; nil when there is no '?'.
	Query []byte
	// Minor is the HTTP/1 minor version: 0 or 1 (0 too when the head failed before its
	// version was parsed: see HasVersion).
	Minor  int
	Header Header
	// Host is the authority of an absolute-form target if used, else the Host field value;
	// nil for an HTTP/1.0 request without either.
	Host []byte
	// ContentLength is the body length: -1 when chunked, 0 when there is no body.
	ContentLength int64
	Chunked       bool
	// Close reports that the client wants the connection closed after this exchange
	// (Connection: close, or HTTP/1.0 without Connection: keep-alive).
	Close bool
	// Expect100 reports "Expect: 100-continue" on an HTTP/1.1 request. HTTP/1.0 requests
	// never set it: servers must ignore the expectation there (RFC 9110 §10.1.1).
	Expect100 bool

	buf []byte // the head bytes; every slice above points into it
	// versioned: the request-line's HTTP-version was parsed (Minor holds it).
	versioned bool
}

// HasVersion reports whether the last ReadRequest parsed the request's HTTP version, so
// that Minor is the client's and not a default: a head refused before its request-line was
// parsed (too large, too slow, cut short) or with a version other than HTTP/1.0 and
// HTTP/1.1 has none.
func (r *Request) HasVersion() bool { return r.versioned }

// Started reports whether the last ReadRequest took any byte of a request-line (empty lines
// before it do not count).
func (r *Request) Started() bool { return len(r.buf) > 0 }

// Reset clears r, keeping its buffers for reuse.
func (r *Request) Reset() {
	buf := r.buf[:0]
	r.Header.Reset()
	h := r.Header
	*r = Request{Header: h, buf: buf}
}

// ReadRequest reads one request head from br into r; the body is not read (see
// [BodyReader]). Up to a few empty lines before the request-line are skipped.
//
// It returns io.EOF when the connection closed cleanly before any byte of a request,
// io.ErrUnexpectedEOF when it closed inside the head, an [*Error] for a protocol violation,
// or the reader's error (a timeout, for example).
func ReadRequest(br *bufio.Reader, r *Request, lim Limits) error {
	r.Reset()
	max := lim.maxBytes()
	var err error
	for skipped := 0; ; skipped++ {
		r.buf, err = appendLine(br, r.buf[:0], max)
		if err != nil {
			if err == io.EOF && len(r.buf) == 0 {
				return io.EOF
			}
			return requestLineError(err)
		}
		if err := checkCRLF(r.buf); err != nil {
			return err
		}
		if len(r.buf) > 2 {
			break
		}
		if skipped == maxLeadingEmptyLines {
			return bad("too many empty lines before request-line")
		}
	}
	lineEnd := len(r.buf)
	r.buf, err = readFieldLines(br, r.buf, max-lineEnd, lim.maxFields())
	if err != nil {
		return err
	}
	if err := r.parseRequestLine(r.buf[:lineEnd-2]); err != nil {
		return err
	}
	if err := parseFields(r.buf[lineEnd:], &r.Header); err != nil {
		return err
	}
	return r.frame()
}

func requestLineError(err error) error {
	switch err {
	case errLineTooLong:
		return &Error{Status: 414, Reason: "request-line too long"}
	case io.EOF:
		return io.ErrUnexpectedEOF
	}
	return err
}

// parseRequestLine parses "method SP request-target SP HTTP-version" (RFC 9112 §3), with
// exactly one SP between the parts.
func (r *Request) parseRequestLine(line []byte) error {
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 < 0 {
		return bad("malformed request-line")
	}
	r.Method = line[:sp1]
	rest := line[sp1+1:]
	sp2 := bytes.IndexByte(rest, ' ')
	if sp2 < 0 {
		return bad("malformed request-line")
	}
	r.Target = rest[:sp2]
	minor, err := parseVersion(rest[sp2+1:])
	if err != nil {
		return err
	}
	r.Minor, r.versioned = minor, true
	if !validToken(r.Method) {
		return bad("invalid method")
	}
	if len(r.Target) == 0 {
		return bad("empty request-target")
	}
	return r.parseTarget()
}

// parseVersion accepts exactly "HTTP/1.1" and "HTTP/1.0" (RFC 9112 §2.3: the name is
// case-sensitive). Other well-formed versions are answered 505, anything else 400.
func parseVersion(v []byte) (int, error) {
	switch string(v) {
	case "HTTP/1.1":
		return 1, nil
	case "HTTP/1.0":
		return 0, nil
	}
	if len(v) == 8 && string(v[:5]) == "HTTP/" && isDigit(v[5]) && v[6] == '.' && isDigit(v[7]) {
		return 0, &Error{Status: 505, Reason: "HTTP version not supported"}
	}
	return 0, bad("malformed HTTP version")
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// frame derives body framing, Host and connection handling from the fields, refusing the
// shapes that let two parsers disagree on where a message ends (RFC 9112 §6.1, §6.3;
// RFC 9110 §7.2 for Host).
func (r *Request) frame() error {
	var (
		hosts, lengths, codings int
		host, length, coding    []byte
		keepAlive               bool
	)
	for i := range r.Header.Fields {
		f := &r.Header.Fields[i]
		switch {
		case EqualFold(f.Name, "Host"):
			hosts++
			host = f.Value
		case EqualFold(f.Name, "Content-Length"):
			lengths++
			length = f.Value
		case EqualFold(f.Name, "Transfer-Encoding"):
			codings++
			coding = f.Value
		case EqualFold(f.Name, "Connection"):
			r.Close = r.Close || hasToken(f.Value, "close")
			keepAlive = keepAlive || hasToken(f.Value, "keep-alive")
		case EqualFold(f.Name, "Expect"):
			r.Expect100 = r.Expect100 || EqualFold(f.Value, "100-continue")
		}
	}
	if r.Minor == 0 {
		r.Close = r.Close || !keepAlive
		r.Expect100 = false
	}
	if err := r.checkHost(hosts, host); err != nil {
		return err
	}
	switch {
	case codings > 0:
		return r.frameChunked(codings, lengths, coding)
	case lengths > 1:
		return bad("multiple Content-Length fields")
	case lengths == 1:
		n, ok := ParseDigits(length)
		if !ok {
			return bad("invalid Content-Length")
		}
		r.ContentLength = n
	}
	return nil
}

func (r *Request) checkHost(hosts int, host []byte) error {
	switch {
	case hosts > 1:
		return bad("multiple Host fields")
	case hosts == 0 && r.Minor == 1:
		return bad("missing Host field")
	case hosts == 1 && !validAuthority(host):
		return bad("invalid Host field")
	}
	if r.Host == nil { // absolute-form authority wins (RFC 9112 §3.2.2)
		r.Host = host
	}
	return nil
}

func (r *Request) frameChunked(codings, lengths int, coding []byte) error {
	switch {
	case lengths > 0:
		return bad("both Transfer-Encoding and Content-Length")
	case r.Minor == 0:
		return bad("Transfer-Encoding in HTTP/1.0 request")
	case codings > 1:
		return bad("multiple Transfer-Encoding fields")
	}
	if err := checkCoding(coding); err != nil {
		return err
	}
	r.Chunked = true
	r.ContentLength = -1
	return nil
}

// checkCoding accepts a Transfer-Encoding value that is exactly "chunked". A list that is
// malformed or applies chunked more than once or not last is a 400 (RFC 9112 §6.1,
// §6.3); a well-formed list naming any other coding is a 501: a gateway decodes none.
func checkCoding(v []byte) error {
	if EqualFold(v, "chunked") {
		return nil
	}
	chunked, other := 0, 0
	for rest := v; rest != nil; {
		var c []byte
		c, rest = nextElement(rest)
		if !validToken(c) {
			return bad("malformed Transfer-Encoding")
		}
		if EqualFold(c, "chunked") {
			chunked++
		} else {
			other++
		}
	}
	if chunked > 1 {
		return bad("chunked applied more than once")
	}
	// Reached only with another coding in the list: "chunked" alone matched above.
	return &Error{Status: 501, Reason: "unsupported transfer-coding"}
}
