package h1

import (
	"bytes"
	"net/netip"
)

// parseTarget classifies the request-target (RFC 9112 §3.2) and fills Path, Query and, for
// absolute-form, Host. The method is needed because asterisk-form is only for OPTIONS.
//
// Accepted: origin-form ("/path?query"), absolute-form with scheme http or https, and "*"
// for OPTIONS. authority-form (CONNECT) is answered 501: a gateway does not tunnel. Any byte
// outside VCHAR, and '#' (fragments are never sent, RFC 9110 §7.1), is refused.
func (r *Request) parseTarget() error {
	t := r.Target
	for _, c := range t {
		if !isTargetChar[c] {
			return bad("invalid byte in request-target")
		}
	}
	if string(r.Method) == "CONNECT" {
		return &Error{Status: 501, Reason: "CONNECT not supported"}
	}
	switch {
	case t[0] == '/':
		r.splitPath(t)
		return nil
	case len(t) == 1 && t[0] == '*':
		if string(r.Method) != "OPTIONS" {
			return bad("asterisk-form request-target without OPTIONS")
		}
		r.Path = t
		return nil
	}
	prefix := 0
	if len(t) >= 7 && EqualFold(t[:7], "http://") {
		prefix = 7
	} else if len(t) >= 8 && EqualFold(t[:8], "https://") {
		prefix = 8
	} else {
		return bad("unsupported request-target form")
	}
	rest := t[prefix:]
	end := bytes.IndexAny(rest, "/?")
	if end < 0 {
		end = len(rest)
	}
	auth := rest[:end]
	if bytes.IndexByte(auth, '@') >= 0 {
		return bad("userinfo in request-target")
	}
	if !validAuthority(auth) {
		return bad("invalid authority in request-target")
	}
	r.Host = auth
	r.splitPath(rest[end:])
	if len(r.Path) == 0 {
		// An empty path means "/" (RFC 9112 §3.2.1). Point at the '/' ending "://" so that
		// Path stays inside the request's buffer.
		r.Path = t[prefix-1 : prefix]
	}
	return nil
}

// CheckControl checks the control data of a request that did not come from ReadRequest
// (an HTTP/2 request: :method, :path and :authority or Host, put in Method, Target and
// Host) by the rules ReadRequest applies to a request-line and Host field: the method a
// token, the target in origin form (or "*" for OPTIONS; RFC 9113 §8.3.1 allows no other in
// :path) of the bytes parseTarget accepts, the host a valid authority without userinfo
// (empty: none). The proxy writes them upstream as they are, so without this check an SP
// in :method or :path would end the upstream request-line early ("GET /admin HTTP/1.1
// /public HTTP/1.1"), and an absolute URI in :path would be a second authority that the
// backend must prefer to Host (RFC 9112 §3.2.2) while the gateway routed on :authority.
func (r *Request) CheckControl() error {
	switch t := r.Target; {
	case !validToken(r.Method):
		return bad("invalid method")
	case len(t) == 0 || t[0] != '/' && !(len(t) == 1 && t[0] == '*'):
		return bad("request-target not in origin form")
	case t[0] == '*' && string(r.Method) != "OPTIONS":
		return bad("asterisk-form request-target without OPTIONS")
	case len(r.Host) > 0 && !validAuthority(r.Host):
		return bad("invalid authority")
	}
	for _, c := range r.Target {
		if !isTargetChar[c] {
			return bad("invalid byte in request-target")
		}
	}
	return nil
}

// splitPath sets Path and Query from a path with optional query.
func (r *Request) splitPath(p []byte) {
	if q := bytes.IndexByte(p, '?'); q >= 0 {
		r.Path, r.Query = p[:q], p[q+1:]
		return
	}
	r.Path = p
}

// validAuthority reports whether a is host [":" port] (RFC 3986 §3.2.2, §3.2.3) with a
// non-empty host: a reg-name (which covers IPv4 dotted quads) or a bracketed IPv6 literal.
// A present port must be 1 to 5 digits no larger than 65535; userinfo is not allowed.
func validAuthority(a []byte) bool {
	host, port := a, []byte(nil)
	hasPort := false
	if len(a) > 0 && a[0] == '[' {
		end := bytes.IndexByte(a, ']')
		if end < 0 || !validIPv6(a[1:end]) {
			return false
		}
		host = a[:end+1]
		switch rest := a[end+1:]; {
		case len(rest) == 0:
		case rest[0] == ':':
			port, hasPort = rest[1:], true
		default:
			return false
		}
	} else {
		if i := bytes.IndexByte(a, ':'); i >= 0 {
			host, port, hasPort = a[:i], a[i+1:], true
		}
		if !validRegName(host) {
			return false
		}
	}
	if hasPort {
		n, ok := ParseDigits(port)
		if !ok || len(port) > 5 || n > 65535 {
			return false
		}
	}
	return len(host) > 0
}

// validRegName reports whether b is a non-empty reg-name: unreserved, sub-delims and
// well-formed pct-encoded octets.
func validRegName(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for i := 0; i < len(b); i++ {
		c := b[i]
		if c == '%' {
			if i+2 >= len(b) || !isHex[b[i+1]] || !isHex[b[i+2]] {
				return false
			}
			i += 2
			continue
		}
		if !isRegName[c] {
			return false
		}
	}
	return true
}

// validIPv6 reports whether b (without brackets) is an IPv6 address. Zones and IPvFuture are
// refused. Only reached for bracketed hosts, so its allocation is off the common path.
func validIPv6(b []byte) bool {
	for _, c := range b {
		if !isHex[c] && c != ':' && c != '.' {
			return false
		}
	}
	addr, err := netip.ParseAddr(string(b))
	return err == nil && addr.Is6()
}
