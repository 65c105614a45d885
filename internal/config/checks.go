package config

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode"
)

// Syntax checks for the strings in a config: addresses, host names, paths, tokens.

var reParamName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// checkHostPort checks a listener or target address: host:port with a numeric port, where
// host is empty (listeners only: all interfaces), an IP address or a DNS name.
func checkHostPort(addr string, listener bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("invalid address %q: want host:port such as \"127.0.0.1:8080\"", addr)
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return fmt.Errorf("invalid address %q: port must be a number from 0 to 65535", addr)
	}
	if n == 0 && !listener {
		return fmt.Errorf("invalid address %q: port 0 is not a target port", addr)
	}
	if host == "" {
		if !listener {
			return fmt.Errorf("invalid address %q: the host is required", addr)
		}
		return nil
	}
	if net.ParseIP(host) == nil && !isDNSName(host, true) {
		return fmt.Errorf("invalid address %q: %q is neither an IP address nor a host name", addr, host)
	}
	return nil
}

// checkRouteHost checks a match.hosts entry: a lower-case DNS name or "*." followed by one.
func checkRouteHost(h string) error {
	name := h
	if rest, ok := strings.CutPrefix(h, "*."); ok {
		name = rest
	}
	switch {
	case h == "":
		return errors.New("empty host")
	case strings.Contains(name, "*"):
		return fmt.Errorf("invalid wildcard %q: only a leading \"*.\" is allowed, such as \"*.example.com\"", h)
	case strings.Contains(h, ":"):
		return fmt.Errorf("invalid host %q: hosts are matched without the port", h)
	case !isDNSName(name, false):
		return fmt.Errorf("invalid host %q: want a name of letters, digits, '-' and '.', such as \"api.example.com\"", h)
	}
	return nil
}

// checkHostValue checks rewrite.host_value: a host name or IP, optionally with a port.
func checkHostValue(v string) error {
	if err := checkHostPort(v, false); err == nil {
		return nil
	}
	if net.ParseIP(v) != nil || isDNSName(v, true) {
		return nil
	}
	return fmt.Errorf("invalid host %q: want a host name or IP address, optionally with :port", v)
}

// isDNSName reports whether s is a host name: dot-separated labels of 1-63 letters, digits
// and '-' (not at either end), at most 253 bytes. lenient also allows '_' and upper case,
// which appear in container and service names used as addresses.
func isDNSName(s string, lenient bool) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			ok := r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' ||
				lenient && (r == '_' || r >= 'A' && r <= 'Z')
			if !ok {
				return false
			}
		}
	}
	return true
}

// checkPath checks a literal path: it starts with "/" and has no query, fragment, spaces
// or control characters.
func checkPath(p string) error {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Errorf("invalid path %q: must start with \"/\"", p)
	case strings.ContainsAny(p, "?#"):
		return fmt.Errorf("invalid path %q: must not contain '?' or '#' (use query conditions)", p)
	case strings.ContainsFunc(p, isCtlOrSpace):
		return fmt.Errorf("invalid path %q: must not contain spaces or control characters", p)
	}
	return nil
}

// checkPathTemplate checks match.path: a literal path whose segments may be "{name}", and
// whose last segment may be "{name...}" (the rest of the path). Braces are only allowed as
// whole segments and names are unique.
func checkPathTemplate(p string) error {
	if err := checkPath(p); err != nil {
		return err
	}
	segs := strings.Split(p[1:], "/")
	names := map[string]bool{}
	for i, seg := range segs {
		if !strings.ContainsAny(seg, "{}") {
			continue
		}
		inner, ok := strings.CutPrefix(seg, "{")
		inner, ok2 := strings.CutSuffix(inner, "}")
		if !ok || !ok2 {
			return fmt.Errorf("invalid template %q: a {name} must be a whole segment, got %q", p, seg)
		}
		name, rest := strings.CutSuffix(inner, "...")
		if rest && i != len(segs)-1 {
			return fmt.Errorf("invalid template %q: {%s} must be the last segment", p, inner)
		}
		if !reParamName.MatchString(name) {
			return fmt.Errorf("invalid template %q: parameter name %q must be letters, digits and '_', not starting with a digit", p, name)
		}
		if names[name] {
			return fmt.Errorf("invalid template %q: parameter %q appears twice", p, name)
		}
		names[name] = true
	}
	return nil
}

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2): a method or a
// header name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

func isCtlOrSpace(r rune) bool { return unicode.IsControl(r) || unicode.IsSpace(r) }

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
