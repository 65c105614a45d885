package h1

import (
	"bufio"
	"math"
)

// parseChunkSize parses a chunk-size line without its CRLF (RFC 9112 §7.1):
//
//	chunk-size [ chunk-ext ]
//	chunk-ext  = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
//
// Stricter than the grammar, BWS is refused: senders must not generate it and parsers that
// disagree on it are a smuggling vector. At most 16 hex digits are read.
func parseChunkSize(line []byte) (int64, error) {
	var n uint64
	i := 0
	for ; i < len(line) && isHex[line[i]]; i++ {
		if i == 16 {
			return 0, bad("chunk-size too large")
		}
		n = n<<4 | uint64(hexValue(line[i]))
	}
	if i == 0 {
		return 0, bad("invalid chunk-size")
	}
	if n > math.MaxInt64 {
		return 0, bad("chunk-size too large")
	}
	if !validChunkExt(line[i:]) {
		return 0, bad("invalid chunk extension")
	}
	return int64(n), nil
}

func hexValue(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c >= 'a':
		return c - 'a' + 10
	}
	return c - 'A' + 10
}

// validChunkExt reports whether ext is *( ";" token [ "=" ( token / quoted-string ) ] ).
func validChunkExt(ext []byte) bool {
	for len(ext) > 0 {
		if ext[0] != ';' {
			return false
		}
		ext = ext[1:]
		i := tokenLen(ext)
		if i == 0 {
			return false
		}
		ext = ext[i:]
		if len(ext) == 0 || ext[0] != '=' {
			continue
		}
		ext = ext[1:]
		if len(ext) > 0 && ext[0] == '"' {
			i = quotedLen(ext)
		} else {
			i = tokenLen(ext)
		}
		if i == 0 {
			return false
		}
		ext = ext[i:]
	}
	return true
}

func tokenLen(b []byte) int {
	for i, c := range b {
		if !isTchar[c] {
			return i
		}
	}
	return len(b)
}

// quotedLen returns the length of the quoted-string (RFC 9110 §5.6.4) at the start of b,
// or 0 if there is none.
func quotedLen(b []byte) int {
	for i := 1; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c == '\\':
			if i+1 == len(b) || !isValueChar[b[i+1]] {
				return 0
			}
			i++
		case !isValueChar[c]: // qdtext: HTAB, SP, VCHAR but '"' and '\', obs-text
			return 0
		}
	}
	return 0
}

// ChunkedWriter writes the chunked transfer coding (RFC 9112 §7.1) to a bufio.Writer.
type ChunkedWriter struct {
	w *bufio.Writer
}

// Reset makes c write to w.
func (c *ChunkedWriter) Reset(w *bufio.Writer) { c.w = w }

// Write writes p as one chunk. An empty p writes nothing: a zero-size chunk would end the
// body.
func (c *ChunkedWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	writeHex(c.w, uint64(len(p)))
	_, _ = c.w.WriteString("\r\n")
	n, err := c.w.Write(p)
	if err != nil {
		return n, err
	}
	_, err = c.w.WriteString("\r\n")
	return n, err
}

// Close writes the last chunk, the trailer fields if any, and the final CRLF. It does not
// flush. A trailer field that could inject lines is refused before anything is written.
func (c *ChunkedWriter) Close(trailer *Header) error {
	if trailer != nil {
		if err := trailer.Validate(); err != nil {
			return err
		}
	}
	_, _ = c.w.WriteString("0\r\n")
	if trailer != nil {
		for i := range trailer.Fields {
			f := &trailer.Fields[i]
			_, _ = c.w.Write(f.Name)
			_, _ = c.w.WriteString(": ")
			_, _ = c.w.Write(f.Value)
			_, _ = c.w.WriteString("\r\n")
		}
	}
	// bufio.Writer errors are sticky: the last write reports any earlier failure.
	_, err := c.w.WriteString("\r\n")
	return err
}

// writeHex writes n in lower-case hex byte by byte, which keeps it off the heap.
func writeHex(w *bufio.Writer, n uint64) {
	shift := 60
	for shift > 0 && n>>shift == 0 {
		shift -= 4
	}
	for ; shift >= 0; shift -= 4 {
		_ = w.WriteByte("0123456789abcdef"[n>>shift&0xf])
	}
}
