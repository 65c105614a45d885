package h1

import "encoding/binary"

// Byte classes of RFC 9110 §5.6.2 (tchar), §5.5 (field-value) and RFC 3986 §3.2.2 (reg-name),
// as lookup tables so the hot loops are one load and one branch per byte.
var (
	isTchar      [256]bool // token characters
	isValueChar  [256]bool // field-value characters: VCHAR, obs-text, SP, HTAB
	isRegName    [256]bool // unreserved / sub-delims of reg-name (pct-encoding checked apart)
	isTargetChar [256]bool // request-target bytes we accept: VCHAR except '#'
	isHex        [256]bool
	lowerTable   [256]byte
)

func init() {
	for c := range 256 {
		b := byte(c)
		lowerTable[c] = b
		if 'A' <= b && b <= 'Z' {
			lowerTable[c] = b + 'a' - 'A'
		}
		alnum := 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
		isTchar[c] = alnum || contains("!#$%&'*+-.^_`|~", b)
		isValueChar[c] = b == ' ' || b == '\t' || (b >= 0x21 && b != 0x7f)
		isRegName[c] = alnum || contains("-._~!$&'()*+,;=", b)
		isTargetChar[c] = b >= 0x21 && b <= 0x7e && b != '#'
		isHex[c] = '0' <= b && b <= '9' || 'a' <= b && b <= 'f' || 'A' <= b && b <= 'F'
	}
}

func contains(s string, b byte) bool {
	for i := range len(s) {
		if s[i] == b {
			return true
		}
	}
	return false
}

// IsToken reports whether s is a non-empty RFC 9110 token: a method or a field name, as a
// config names them.
func IsToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isTchar[s[i]] {
			return false
		}
	}
	return true
}

// validToken reports whether b is a non-empty RFC 9110 token.
func validToken(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b {
		if !isTchar[c] {
			return false
		}
	}
	return true
}

// validValue reports whether every byte of b may appear in a field value. Eight bytes at a
// time it tests for any byte below 0x20 or equal to 0x7f with the word tricks of
// "Bit Twiddling Hacks" (hasless, haszero), which never miss such a byte; a flagged word
// (HTAB, or a false alarm) is rechecked byte by byte.
func validValue(b []byte) bool {
	const ones, highs = 0x0101010101010101, 0x8080808080808080
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		del := w ^ (ones * 0x7f)
		if (w-ones*0x20)&^w&highs != 0 || (del-ones)&^del&highs != 0 {
			for _, c := range b[:8] {
				if !isValueChar[c] {
					return false
				}
			}
		}
		b = b[8:]
	}
	for _, c := range b {
		if !isValueChar[c] {
			return false
		}
	}
	return true
}

// EqualFold reports whether b and s are equal under ASCII case folding (field names,
// tokens: never Unicode folding).
func EqualFold[T string | []byte](b []byte, s T) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		if lowerTable[b[i]] != lowerTable[s[i]] {
			return false
		}
	}
	return true
}

// trimOWS removes leading and trailing SP and HTAB (RFC 9110 §5.6.3).
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// nextElement splits the first element off a comma-separated list (RFC 9110 §5.6.1) and
// returns it with OWS trimmed, and the rest after the comma. Empty elements are returned as
// empty slices; callers decide whether they are allowed.
func nextElement(list []byte) (elem, rest []byte) {
	for i, c := range list {
		if c == ',' {
			return trimOWS(list[:i]), list[i+1:]
		}
	}
	return trimOWS(list), nil
}

// hasToken reports whether the comma-separated list contains token (case-insensitive).
func hasToken(list []byte, token string) bool {
	for len(list) > 0 {
		var e []byte
		e, list = nextElement(list)
		if EqualFold(e, token) {
			return true
		}
	}
	return false
}

// ParseDigits parses 1*DIGIT (a length, a status, a port) into a non-negative int64. It
// fails on an empty input, any non-digit (sign, space, comma) and values beyond int63.
func ParseDigits(b []byte) (int64, bool) {
	if len(b) == 0 || len(b) > 19 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		d := int64(c - '0')
		if n > (1<<63-1-d)/10 {
			return 0, false
		}
		n = n*10 + d
	}
	return n, true
}
