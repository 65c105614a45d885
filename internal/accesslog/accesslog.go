// Package accesslog writes one JSON line per request. Lines are built without reflection into
// a pooled buffer and appended to a shared 64 KiB batch, written whole with one write(2) when
// full, every 100 ms, on a destination switch and on Close (batch.go): logging costs a request
// one short critical section and a copy, and one request in a batch's worth a write.
package accesslog

import (
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
	"unsafe"
)

var linePool = sync.Pool{New: func() any { return &Line{b: make([]byte, 0, 512)} }}

// Line is one access log entry under construction. Every field starts with its comma,
// the first one too: Write turns the first field's comma into the line's '{', so that
// adding a field does not ask whether it is the first. memo keeps runs of fields that
// repeat from line to line (memo.go).
type Line struct {
	b    []byte
	memo [NumRuns]memo
}

// Begin starts a line. Call Str/Int/... and then Write.
func (l *Logger) Begin() *Line {
	if l == nil || l.off.Load() {
		return nil
	}
	ln := linePool.Get().(*Line)
	ln.b = ln.b[:0]
	return ln
}

// key appends `,"k":`.
func (ln *Line) key(k string) {
	ln.b = append(ln.b, ',', '"')
	ln.b = append(ln.b, k...)
	ln.b = append(ln.b, '"', ':')
}

// finish closes the line: '{' in place of the first field's comma, "}\n" after the last.
func (ln *Line) finish() {
	if len(ln.b) == 0 {
		ln.b = append(ln.b, '{')
	} else {
		ln.b[0] = '{'
	}
	ln.b = append(ln.b, '}', '\n')
}

// Str adds a string field.
func (ln *Line) Str(k, v string) *Line {
	if ln == nil {
		return nil
	}
	ln.key(k)
	ln.b = appendJSONString(ln.b, v)
	return ln
}

// Bytes adds a string field from bytes.
func (ln *Line) Bytes(k string, v []byte) *Line {
	if ln == nil {
		return nil
	}
	ln.key(k)
	// Not string(v): that copies a value longer than 32 bytes (a browser's user agent) to
	// the heap, one allocation per request; appendJSONString keeps nothing of s.
	ln.b = appendJSONString(ln.b, unsafe.String(unsafe.SliceData(v), len(v)))
	return ln
}

// Int adds an integer field.
func (ln *Line) Int(k string, v int64) *Line {
	if ln == nil {
		return nil
	}
	ln.key(k)
	ln.b = strconv.AppendInt(ln.b, v, 10)
	return ln
}

// Bool adds a boolean field.
func (ln *Line) Bool(k string, v bool) *Line {
	if ln == nil {
		return nil
	}
	ln.key(k)
	ln.b = strconv.AppendBool(ln.b, v)
	return ln
}

// Ms adds a duration in milliseconds with microsecond precision (2.913, 2.91, 3), written
// with integer arithmetic: two per line, float formatting was a visible share of the cost.
func (ln *Line) Ms(k string, d time.Duration) *Line {
	if ln == nil {
		return nil
	}
	ln.key(k)
	us := d.Microseconds()
	if us < 0 {
		ln.b = strconv.AppendFloat(ln.b, float64(us)/1000, 'f', -1, 64)
		return ln
	}
	ln.b = strconv.AppendInt(ln.b, us/1000, 10)
	if frac := us % 1000; frac != 0 {
		digits := [4]byte{'.', byte('0' + frac/100), byte('0' + frac/10%10), byte('0' + frac%10)}
		n := 4
		for digits[n-1] == '0' {
			n--
		}
		ln.b = append(ln.b, digits[:n]...)
	}
	return ln
}

// Time adds a timestamp in RFC 3339 UTC with milliseconds (2026-11-25T13:06:31.220Z). The
// part up to the second is formatted once per second and shared.
func (ln *Line) Time(k string, t time.Time) *Line {
	if ln == nil {
		return nil
	}
	ln.key(k)
	t = t.UTC()
	sec := t.Unix()
	c := secondCache.Load()
	if c == nil || c.sec != sec {
		c = &cachedSecond{sec: sec}
		c.text = t.AppendFormat(c.text[:0], "2006-01-02T15:04:05.")
		secondCache.Store(c)
	}
	ms := t.Nanosecond() / 1e6
	ln.b = append(ln.b, '"')
	ln.b = append(ln.b, c.text...)
	ln.b = append(ln.b, byte('0'+ms/100), byte('0'+ms/10%10), byte('0'+ms%10), 'Z', '"')
	return ln
}

// cachedSecond is a timestamp's text up to and including the second's dot.
type cachedSecond struct {
	sec  int64
	text []byte
}

var secondCache atomic.Pointer[cachedSecond]

// Raw adds a field whose value is already valid JSON.
func (ln *Line) Raw(k string, json []byte) *Line {
	if ln == nil {
		return nil
	}
	ln.key(k)
	ln.b = append(ln.b, json...)
	return ln
}

// JSONAppender appends a value as valid JSON to b and returns the extended buffer.
type JSONAppender interface{ AppendJSON(b []byte) []byte }

// JSON adds a field whose value v appends as valid JSON straight into the line (Raw
// without a buffer of its own and a copy).
func (ln *Line) JSON(k string, v JSONAppender) *Line {
	if ln == nil {
		return nil
	}
	ln.key(k)
	ln.b = v.AppendJSON(ln.b)
	return ln
}

const hexDigits = "0123456789abcdef"

// jsonSafe marks the bytes a JSON string holds as they are: printable ASCII but the quote
// and the backslash.
var jsonSafe = func() (t [utf8.RuneSelf]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = c != '"' && c != '\\'
	}
	return t
}()

// appendJSONString appends s as a JSON string, escaping what JSON requires and replacing
// invalid UTF-8 so that a hostile request cannot break the log format. Runs of bytes that
// need nothing (safe ASCII, valid multi-byte runes) are copied whole: most values are runs
// of safe ASCII, and copying them a byte at a time was the largest share of a line's cost.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if jsonSafe[c] {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			if c == '"' || c == '\\' {
				b = append(b, '\\', c)
			} else {
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			start = i + 1
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
