package h1

import (
	"bufio"
	"bytes"
	"io"
)

type bodyMode uint8

const (
	modeLength  bodyMode = iota // exactly remaining bytes
	modeChunked                 // chunked transfer coding (RFC 9112 §7.1)
	modeClose                   // until the connection closes
)

// chunkState is where a chunked body stands between Reads.
type chunkState uint8

const (
	stSize     chunkState = iota // next: chunk-size line
	stData                       // inside chunk data, remaining bytes left
	stDataCRLF                   // next: the CRLF closing chunk data
	stTrailer                    // next: trailer section after the last chunk
	stDone                       // body and trailer consumed
)

// BodyReader reads a message body framed by Content-Length, the chunked transfer coding,
// or the connection closing. It never reads past the end of the body, so the bufio.Reader
// is positioned on the next message afterwards. The zero BodyReader is an empty body.
//
// After the last byte of chunk data, framing that is already buffered (the chunk's CRLF,
// the last-chunk, an empty trailer) is consumed without blocking, so Done usually turns true
// with the last data rather than one Read later.
type BodyReader struct {
	br         *bufio.Reader
	mode       bodyMode
	state      chunkState
	remaining  int64 // bytes left in the body (modeLength) or current chunk (modeChunked)
	err        error // sticky: once set, every Read returns it
	maxTrailer int
	trailer    Header
	tbuf       []byte // trailer bytes; trailer fields point into it
	lbuf       []byte // a chunk-size line longer than br's buffer
}

// Reset prepares b to read a body from br: chunked coding if chunked; else exactly n bytes
// if n >= 0; else until EOF. maxTrailerBytes bounds the trailer section; 0 (or less) means
// DefaultMaxTrailerBytes.
func (b *BodyReader) Reset(br *bufio.Reader, n int64, chunked bool, maxTrailerBytes int) {
	if maxTrailerBytes <= 0 {
		maxTrailerBytes = DefaultMaxTrailerBytes
	}
	b.trailer.Reset()
	*b = BodyReader{
		br:         br,
		maxTrailer: maxTrailerBytes,
		trailer:    b.trailer,
		tbuf:       b.tbuf[:0],
		lbuf:       b.lbuf[:0],
	}
	switch {
	case chunked:
		b.mode = modeChunked
	case n >= 0:
		b.mode, b.remaining = modeLength, n
	default:
		b.mode = modeClose
	}
}

// Read reads body bytes. It returns io.EOF at the end of the body, io.ErrUnexpectedEOF if
// the connection ends early, and an [*Error] with Status 400 for bad chunked framing. Errors
// are sticky.
func (b *BodyReader) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.br == nil {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var err error
	switch b.mode {
	case modeLength:
		n, err = b.readLength(p)
	case modeChunked:
		n, err = b.readChunked(p)
	default:
		n, err = b.br.Read(p)
	}
	if err != nil {
		b.err = err
	}
	return n, err
}

// Trailer returns the trailer fields of a chunked body, complete once Read returned io.EOF.
// They stay valid until the next Reset.
func (b *BodyReader) Trailer() *Header { return &b.trailer }

// Done reports whether the whole body, trailer included, has been consumed.
func (b *BodyReader) Done() bool {
	switch {
	case b.br == nil:
		return true
	case b.mode == modeLength:
		return b.remaining == 0
	case b.mode == modeChunked:
		return b.state == stDone
	}
	return b.err == io.EOF
}

// Buffered reports whether the rest of the body is already in the reader's buffer, so that
// reading it to the end will not touch the connection. Only a Content-Length body can tell
// before the end; a chunked or close-delimited one reports false until Done.
func (b *BodyReader) Buffered() bool {
	if b.Done() {
		return true
	}
	return b.mode == modeLength && int64(b.br.Buffered()) >= b.remaining
}

// Rest returns the rest of a Content-Length body when all of it is already in the reader's
// buffer, without consuming it, so that a caller can write it from there instead of copying
// it out first; the caller then calls Skip with what it wrote. It returns nil for other
// framings, when bytes are still to come, after an error, or when nothing is left. The bytes
// are valid until the next call on the reader.
func (b *BodyReader) Rest() []byte {
	if b.br == nil || b.err != nil || b.mode != modeLength || b.remaining == 0 || int64(b.br.Buffered()) < b.remaining {
		return nil
	}
	p, _ := b.br.Peek(int(b.remaining)) // all buffered: no read
	return p
}

// Skip consumes n of the bytes Rest returned.
func (b *BodyReader) Skip(n int) {
	d, _ := b.br.Discard(n)
	b.remaining -= int64(d)
}

// Ready reports whether the next Read returns without reading the connection: body bytes,
// the body's end or a framing error are already in the reader's buffer (or an error is
// sticky). A chunked body is ready only when the framing before the next data byte and that
// byte are buffered: framing alone would make Read wait for the data. Callers flush what
// they relayed before a Read that is not ready, so that streamed chunks go on at once.
func (b *BodyReader) Ready() bool {
	if b.br == nil || b.err != nil || b.Done() {
		return true
	}
	n := b.br.Buffered()
	if b.mode != modeChunked || n == 0 {
		return n > 0
	}
	buf, _ := b.br.Peek(n)
	for state := b.state; ; {
		switch state {
		case stData:
			return len(buf) > 0
		case stDataCRLF:
			if len(buf) < 2 {
				return false
			}
			buf, state = buf[2:], stSize
		case stSize:
			i := bytes.IndexByte(buf, '\n')
			if i < 0 {
				return false
			}
			if i == 0 || buf[i-1] != '\r' {
				return true // Read fails at once
			}
			size, err := parseChunkSize(buf[:i-1])
			switch {
			case err != nil:
				return true
			case size == 0:
				state = stTrailer
			default:
				state = stData
			}
			buf = buf[i+1:]
		default: // stTrailer
			return bytes.HasPrefix(buf, crlf) || bytes.Contains(buf, []byte("\n\r\n"))
		}
	}
}

// InFraming reports whether a chunked body stands before framing (a chunk-size line, the
// CRLF after chunk data, the trailer) that is not fully buffered: the next Read then reads
// the connection even though bytes are buffered.
func (b *BodyReader) InFraming() bool {
	return b.br != nil && b.err == nil && b.mode == modeChunked && b.state != stData && b.state != stDone &&
		!b.framingBuffered()
}

// Direct returns how many body bytes may be moved straight from the connection, past the
// reader (splice): all that is left of a Content-Length body when the reader's buffer is
// empty; 0 otherwise (bytes buffered, other framings, after an error).
func (b *BodyReader) Direct() int64 {
	if b.br == nil || b.err != nil || b.mode != modeLength || b.br.Buffered() > 0 {
		return 0
	}
	return b.remaining
}

// Moved records that n of the bytes Direct allowed were moved straight from the connection.
func (b *BodyReader) Moved(n int64) {
	b.remaining -= n
}

func (b *BodyReader) readLength(p []byte) (int, error) {
	if b.remaining == 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.br.Read(p)
	b.remaining -= int64(n)
	if err == io.EOF && b.remaining > 0 {
		err = io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil // the next Read reports it
	}
	return n, err
}

func (b *BodyReader) readChunked(p []byte) (int, error) {
	for b.state != stData {
		if b.state == stDone {
			return 0, io.EOF
		}
		if err := b.step(); err != nil {
			return 0, err
		}
	}
	if int64(len(p)) > b.remaining {
		p = p[:b.remaining]
	}
	n, err := b.br.Read(p)
	b.remaining -= int64(n)
	if b.remaining == 0 {
		b.state = stDataCRLF
	}
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return n, err
	}
	if b.state == stDataCRLF {
		// Errors here belong to later bytes: report them on the next Read.
		b.err = b.stepBuffered()
	}
	return n, nil
}

// step consumes the framing the current state expects, blocking if needed.
func (b *BodyReader) step() error {
	switch b.state {
	case stDataCRLF:
		crlf, err := b.br.Peek(2)
		if len(crlf) < 2 {
			return unexpected(err)
		}
		if crlf[0] != '\r' || crlf[1] != '\n' {
			return bad("missing CRLF after chunk data")
		}
		_, _ = b.br.Discard(2) // cannot fail: the bytes are buffered
		b.state = stSize
	case stSize:
		line, err := b.readSizeLine()
		if err != nil {
			return err
		}
		size, err := parseChunkSize(line)
		if err != nil {
			return err
		}
		if size == 0 {
			b.state = stTrailer
		} else {
			b.state, b.remaining = stData, size
		}
	case stTrailer:
		if err := b.readTrailer(); err != nil {
			return err
		}
		b.state = stDone
	}
	return nil
}

// stepBuffered steps while the bytes the state needs are already buffered, so it never
// blocks.
func (b *BodyReader) stepBuffered() error {
	for b.state != stData && b.state != stDone {
		if !b.framingBuffered() {
			return nil
		}
		if err := b.step(); err != nil {
			return err
		}
	}
	return nil
}

// framingBuffered reports whether the framing the current state expects is all in the
// buffer, so that step will not read the connection.
func (b *BodyReader) framingBuffered() bool {
	buf, _ := b.br.Peek(b.br.Buffered())
	switch b.state {
	case stDataCRLF:
		return len(buf) >= 2
	case stSize:
		return bytes.IndexByte(buf, '\n') >= 0
	case stTrailer:
		return bytes.HasPrefix(buf, crlf) || bytes.Contains(buf, []byte("\n\r\n"))
	}
	return true
}

var crlf = []byte("\r\n")

// maxChunkLine bounds a chunk-size line with its extensions and CRLF.
const maxChunkLine = 4096

// readSizeLine returns the next chunk-size line without its CRLF. The result may point
// into br's buffer: it is valid until the next read.
func (b *BodyReader) readSizeLine() ([]byte, error) {
	line, err := b.br.ReadSlice('\n')
	if err == bufio.ErrBufferFull && len(line) < maxChunkLine {
		b.lbuf = append(b.lbuf[:0], line...)
		b.lbuf, err = appendLine(b.br, b.lbuf, maxChunkLine-len(b.lbuf))
		line = b.lbuf
	}
	switch {
	case err == bufio.ErrBufferFull || err == errLineTooLong || len(line) > maxChunkLine:
		return nil, bad("chunk-size line too long")
	case err != nil:
		return nil, unexpected(err)
	}
	if err := checkCRLF(line); err != nil {
		return nil, err
	}
	return line[:len(line)-2], nil
}

// readTrailer reads the trailer section (RFC 9112 §7.1.2) with the rules of a head.
func (b *BodyReader) readTrailer() error {
	var err error
	b.tbuf, err = readFieldLines(b.br, b.tbuf[:0], b.maxTrailer, DefaultMaxHeaders)
	if err == nil {
		err = parseFields(b.tbuf, &b.trailer)
	}
	if e, ok := err.(*Error); ok && e.Status != 400 {
		return bad("trailer section too large")
	}
	return err
}

// unexpected maps the end of input inside a body to io.ErrUnexpectedEOF.
func unexpected(err error) error {
	if err == io.EOF || err == nil {
		return io.ErrUnexpectedEOF
	}
	return err
}
