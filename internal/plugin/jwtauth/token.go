package jwtauth

import "sluice/internal/plugin"

// bearerToken returns the token in a header value. With bearer (the Authorization header)
// the value must be "Bearer <token>" (the scheme is case-insensitive, RFC 9110 section
// 11.1): another scheme is someone else's credentials, not ours. Otherwise the value is the
// token, with an optional "Bearer " before it.
func bearerToken(v []byte, bearer bool) ([]byte, bool) {
	const scheme = "bearer "
	if len(v) >= len(scheme) && plugin.EqualFold(v[:len(scheme)], scheme) {
		v = trimSpace(v[len(scheme):])
	} else if bearer {
		return nil, false
	}
	return v, len(v) > 0
}

// cookieValue returns the value of the cookie name in the request's Cookie fields.
func cookieValue(h *plugin.Header, name string) ([]byte, bool) {
	for i := range h.Fields {
		f := &h.Fields[i]
		if !plugin.EqualFold(f.Name, "Cookie") {
			continue
		}
		for rest := f.Value; len(rest) > 0; {
			var pair []byte
			pair, rest = nextCookie(rest)
			if len(pair) > len(name) && pair[len(name)] == '=' && string(pair[:len(name)]) == name {
				return pair[len(name)+1:], true
			}
		}
	}
	return nil, false
}

// removeCookie removes the cookie name from the Cookie fields, cutting it (with its
// separator) out of their values in place: no allocation, the other cookies byte for byte as
// sent. A field left empty is removed.
func removeCookie(h *plugin.Header, name string) {
	for i := range h.Fields {
		f := &h.Fields[i]
		if !plugin.EqualFold(f.Name, "Cookie") {
			continue
		}
		v := f.Value
		for at := 0; at < len(v); {
			for at < len(v) && (v[at] == ' ' || v[at] == '\t') {
				at++
			}
			end := at
			for end < len(v) && v[end] != ';' {
				end++
			}
			pair := trimSpace(v[at:end])
			if !(len(pair) > len(name) && pair[len(name)] == '=' && string(pair[:len(name)]) == name) {
				at = end + 1
				continue
			}
			if end < len(v) { // cut "pair; " up to the next cookie
				end++
				for end < len(v) && (v[end] == ' ' || v[end] == '\t') {
					end++
				}
			} else { // the last one: cut the separator before it instead
				for at > 0 && (v[at-1] == ' ' || v[at-1] == '\t') {
					at--
				}
				if at > 0 && v[at-1] == ';' {
					at--
				}
			}
			v = v[:at+copy(v[at:], v[end:])]
		}
		f.Value = v
	}
	h.RemoveFunc(func(f *plugin.Field) bool { return plugin.EqualFold(f.Name, "Cookie") && len(trimSpace(f.Value)) == 0 })
}

// nextCookie splits the first "name=value" off a Cookie value ("a=1; b=2").
func nextCookie(v []byte) (pair, rest []byte) {
	for i := range v {
		if v[i] == ';' {
			return trimSpace(v[:i]), trimSpace(v[i+1:])
		}
	}
	return trimSpace(v), nil
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}
