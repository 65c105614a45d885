package compress

import (
	"bytes"
	"strings"

	"sluice/internal/plugin"
)

// mediaType is one pattern of Config.Types, lower case: typ "*" matches all; sub "*" a
// whole type; suffix "+json" (from "application/*+json") a structured-syntax suffix.
type mediaType struct {
	typ, sub, suffix string
}

// parseMediaType parses a Types entry.
func parseMediaType(s string) (mediaType, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if s == "*" || s == "*/*" {
		return mediaType{typ: "*"}, true
	}
	typ, sub, ok := strings.Cut(s, "/")
	if !ok || !token(typ) || typ == "*" || sub == "" || strings.Contains(sub, "/") {
		return mediaType{}, false
	}
	if rest, ok := strings.CutPrefix(sub, "*"); ok {
		switch {
		case rest == "":
			return mediaType{typ: typ, sub: "*"}, true
		case len(rest) > 1 && rest[0] == '+' && token(rest[1:]):
			return mediaType{typ: typ, suffix: rest}, true
		}
		return mediaType{}, false
	}
	if !token(sub) {
		return mediaType{}, false
	}
	return mediaType{typ: typ, sub: sub}, true
}

// token reports whether s is a non-empty media type token without wildcards.
func token(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?={}*`, c) >= 0 {
			return false
		}
	}
	return true
}

// match reports whether media type v (lower or mixed case, no parameters) matches m.
func (m mediaType) match(typ, sub []byte) bool {
	switch {
	case m.typ == "*":
		return true
	case !plugin.EqualFold(typ, m.typ):
		return false
	case m.sub == "*":
		return true
	case m.suffix != "":
		return len(sub) > len(m.suffix) && plugin.EqualFold(sub[len(sub)-len(m.suffix):], m.suffix)
	}
	return plugin.EqualFold(sub, m.sub)
}

// splitType returns the type and subtype of a Content-Type value, without parameters.
func splitType(v []byte) (typ, sub []byte) {
	if i := bytes.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	v = bytes.TrimSpace(v)
	i := bytes.IndexByte(v, '/')
	if i < 0 {
		return v, nil
	}
	return v[:i], v[i+1:]
}

// streaming reports whether a media type is a stream whose parts must reach the client as
// they come and that a compressor would hold back (or that carries its own compression):
// server-sent events (traefik/traefik#11509), gRPC, and multipart/x-mixed-replace (MJPEG
// cameras, server push of frames).
func streaming(typ, sub []byte) bool {
	switch {
	case plugin.EqualFold(typ, "text"):
		return plugin.EqualFold(sub, "event-stream")
	case plugin.EqualFold(typ, "application"):
		return len(sub) >= 4 && plugin.EqualFold(sub[:4], "grpc")
	case plugin.EqualFold(typ, "multipart"):
		return plugin.EqualFold(sub, "x-mixed-replace")
	}
	return false
}
