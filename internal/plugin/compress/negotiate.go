package compress

// Content negotiation from Accept-Encoding (RFC 9110 §12.5.3), without allocating.
//
// Each element is a coding with an optional weight: "gzip;q=0.8, br, zstd;q=0, *;q=0.1".
// A coding's weight is its own element's, else that of "*" when present, else it is not
// acceptable. A weight of 0 refuses the coding. Among the offered codings acceptable to
// the client, the highest weight wins; ties go to the server's order (Config.Encodings).
// identity (no compression) competes only when written: it wins when its weight is higher
// than every acceptable offered coding's ("gzip;q=0.5, identity" gives no compression,
// "gzip;q=0.5" gzip, "gzip, identity" gzip: equal weights prefer compressing). A missing or empty
// Accept-Encoding means identity only: browsers and curl --compressed always send one, and
// a client without it may not decode anything (RFC 9110 allows any coding then, but every
// proxy we learnt from compresses only when asked). x-gzip is gzip (RFC 9110 §8.4.1.3).
// An element with a malformed weight counts as refused: never send what a client may not
// decode.

import (
	"sluice/internal/plugin"
)

// Coding is a content coding the plugin can produce; 0 is none (identity).
type Coding uint8

// The codings, by their Content-Encoding tokens.
const (
	None Coding = iota
	Gzip
	Brotli
	Zstd
	numCodings
)

var codingNames = [numCodings]string{None: "identity", Gzip: "gzip", Brotli: "br", Zstd: "zstd"}

func (c Coding) String() string { return codingNames[c] }

// codingOf returns the coding named tok (case-insensitive), None when it is not one of ours.
func codingOf(tok []byte) Coding {
	switch {
	case plugin.EqualFold(tok, "gzip"), plugin.EqualFold(tok, "x-gzip"):
		return Gzip
	case plugin.EqualFold(tok, "br"):
		return Brotli
	case plugin.EqualFold(tok, "zstd"):
		return Zstd
	}
	return None
}

// weights are the client's weights in thousandths (q=0.5 is 500), -1 when not written.
type weights struct {
	coding   [numCodings]int
	identity int
	star     int
}

// negotiate returns the coding to use for a request with header h, from prefer (the
// server's order, most preferred first).
func negotiate(h *plugin.Header, prefer []Coding) Coding {
	w := weights{identity: -1, star: -1}
	for i := range w.coding {
		w.coding[i] = -1
	}
	seen := false
	for i := range h.Fields {
		f := &h.Fields[i]
		if plugin.EqualFold(f.Name, "Accept-Encoding") {
			seen = true
			w.parse(f.Value)
		}
	}
	if !seen {
		return None
	}
	best, bestQ := None, 0
	for _, c := range prefer {
		q := w.coding[c]
		if q < 0 {
			q = w.star
		}
		if q > bestQ {
			best, bestQ = c, q
		}
	}
	if best == None {
		return None
	}
	if w.identity > bestQ {
		return None
	}
	return best
}

// parse adds the elements of one Accept-Encoding value to w; a coding written twice keeps
// its highest weight.
func (w *weights) parse(v []byte) {
	for len(v) > 0 {
		var elem []byte
		elem, v = cut(v, ',')
		tok, params := cut(elem, ';')
		tok = trim(tok)
		if len(tok) == 0 {
			continue
		}
		q := qvalue(params)
		var dst *int
		switch {
		case len(tok) == 1 && tok[0] == '*':
			dst = &w.star
		case plugin.EqualFold(tok, "identity"):
			dst = &w.identity
		default:
			c := codingOf(tok)
			if c == None {
				continue
			}
			dst = &w.coding[c]
		}
		*dst = max(*dst, q)
	}
}

// qvalue returns the weight in thousandths from an element's parameters ("q=0.5", maybe
// among others): 1000 when there is no q, 0 when it is malformed (RFC 9110 §12.4.2:
// 0, 0.xxx, 1 or 1.000, at most three decimals).
func qvalue(params []byte) int {
	for len(params) > 0 {
		var p []byte
		p, params = cut(params, ';')
		p = trim(p)
		if len(p) < 2 || (p[0] != 'q' && p[0] != 'Q') || p[1] != '=' {
			continue
		}
		return parseQ(trim(p[2:]))
	}
	return 1000
}

// parseQ parses a qvalue into thousandths; 0 when malformed.
func parseQ(s []byte) int {
	if len(s) == 0 || (s[0] != '0' && s[0] != '1') {
		return 0
	}
	n := int(s[0]-'0') * 1000
	if len(s) == 1 {
		return n
	}
	if s[1] != '.' || len(s) > 5 {
		return 0
	}
	scale := 100
	for _, d := range s[2:] {
		if d < '0' || d > '9' {
			return 0
		}
		n += int(d-'0') * scale
		scale /= 10
	}
	if n > 1000 {
		return 0
	}
	return n
}

// cut splits s at the first sep.
func cut(s []byte, sep byte) (before, after []byte) {
	for i, b := range s {
		if b == sep {
			return s[:i], s[i+1:]
		}
	}
	return s, nil
}

// trim removes spaces and tabs at both ends.
func trim(s []byte) []byte {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}
