package h1

// Reading a message head.
//
// A head is read line by line with bufio.Reader.ReadSlice and copied into a buffer owned by
// the message, so that the parsed slices survive later reads on the bufio.Reader. Lines
// longer than the bufio buffer arrive in several fragments (bufio.ErrBufferFull) and are
// accumulated; every byte counts toward the limit as it arrives, so a peer can never make us
// buffer more than the limit. The whole head is read first and parsed afterwards: slices
// into the buffer are only taken once it has stopped growing.

import (
	"bufio"
	"bytes"
	"io"
)

// Defaults for zero Limits fields.
const (
	DefaultMaxHeaderBytes  = 65536
	DefaultMaxHeaders      = 100
	DefaultMaxTrailerBytes = 16384
)

// Limits bounds the size of a message head.
type Limits struct {
	// MaxHeaderBytes bounds the start line plus all header lines, CRLFs and the final empty
	// line included (empty lines skipped before a request-line do not count); 0 (or less)
	// means DefaultMaxHeaderBytes.
	MaxHeaderBytes int
	// MaxHeaders bounds the number of header fields; 0 (or less) means DefaultMaxHeaders.
	MaxHeaders int
}

func (l Limits) maxBytes() int {
	if l.MaxHeaderBytes <= 0 {
		return DefaultMaxHeaderBytes
	}
	return l.MaxHeaderBytes
}

func (l Limits) maxFields() int {
	if l.MaxHeaders <= 0 {
		return DefaultMaxHeaders
	}
	return l.MaxHeaders
}

// errLineTooLong is internal: callers turn it into the 414 or 431 that fits.
var errLineTooLong = &Error{Status: 431, Reason: "head too large"}

// appendLine appends the next line of br, through its LF, to dst. It returns errLineTooLong
// once more than max bytes would be appended, and the reader's error (io.EOF included) if
// the line is incomplete.
func appendLine(br *bufio.Reader, dst []byte, max int) ([]byte, error) {
	start := len(dst)
	for {
		frag, err := br.ReadSlice('\n')
		if len(dst)-start+len(frag) > max {
			return dst, errLineTooLong
		}
		dst = append(dst, frag...)
		if err != bufio.ErrBufferFull {
			return dst, err
		}
	}
}

// checkCRLF verifies that a complete line ends in CRLF. A bare CR elsewhere in the line is
// caught by the character checks of the parsers, which accept no CR.
func checkCRLF(line []byte) error {
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return bad("line not terminated by CRLF")
	}
	return nil
}

// readFieldLines appends header lines to buf up to and including the empty line that ends
// the section. budget bounds the bytes appended, maxFields the number of lines.
func readFieldLines(br *bufio.Reader, buf []byte, budget, maxFields int) ([]byte, error) {
	for n := 0; ; n++ {
		start := len(buf)
		var err error
		buf, err = appendLine(br, buf, budget)
		switch err {
		case nil:
		case io.EOF:
			return buf, io.ErrUnexpectedEOF
		case errLineTooLong:
			return buf, &Error{Status: 431, Reason: "header section too large"}
		default:
			return buf, err
		}
		line := buf[start:]
		if err := checkCRLF(line); err != nil {
			return buf, err
		}
		if len(line) == 2 {
			return buf, nil
		}
		if n == maxFields {
			return buf, &Error{Status: 431, Reason: "too many header fields"}
		}
		budget -= len(line)
	}
}

// parseFields parses the field lines in section, which holds whole CRLF-terminated lines
// ending with the empty line, appending the fields to h.
func parseFields(section []byte, h *Header) error {
	for {
		i := bytes.IndexByte(section, '\n')
		if i <= 1 { // the empty line; readFieldLines checked the CRLF
			return nil
		}
		line := section[:i-1]
		section = section[i+1:]
		f, err := parseField(line)
		if err != nil {
			return err
		}
		h.Fields = append(h.Fields, f)
	}
}

// parseField parses one field line without its CRLF (RFC 9112 §5):
//
//	field-line = field-name ":" OWS field-value OWS
//
// obs-fold continuation lines and whitespace before the colon are refused (RFC 9112 §5.1,
// §5.2): both have been used to smuggle fields past lenient parsers.
func parseField(line []byte) (Field, error) {
	if line[0] == ' ' || line[0] == '\t' {
		return Field{}, bad("obs-fold or whitespace at start of field line")
	}
	colon := bytes.IndexByte(line, ':')
	if colon < 0 {
		return Field{}, bad("field line without colon")
	}
	name := line[:colon]
	if !validToken(name) {
		return Field{}, bad("invalid field name")
	}
	value := trimOWS(line[colon+1:])
	if !validValue(value) {
		return Field{}, bad("invalid byte in field value")
	}
	return Field{Name: name, Value: value}, nil
}

// HeadBuffered reports whether br's buffer already holds a complete head (through the empty
// line that ends it), so that reading the head will not touch the connection. Callers use it
// to skip arming a read deadline that no read would wait under.
func HeadBuffered(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	for len(b) >= 2 && b[0] == '\r' && b[1] == '\n' {
		b = b[2:] // empty lines ReadRequest skips before a request-line end no head
	}
	return bytes.Contains(b, crlfcrlf)
}

var crlfcrlf = []byte("\r\n\r\n")
