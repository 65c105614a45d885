package config

import (
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

func (c *Config) validateRoutes(p *problems) {
	ids := map[string]int{}
	matches := map[string]int{}
	for i, r := range c.Routes {
		b := fmt.Sprintf("routes[%d]", i)
		if checkID(p, b+".id", r.ID) {
			if j, dup := ids[r.ID]; dup {
				p.add(b+".id", "duplicate route id %q (also routes[%d])", r.ID, j)
			}
			ids[r.ID] = i
		}
		if r.Split != nil {
			c.validateSplit(p, b, r) // split.go
		} else if r.Upstream != "" { // validateRoute says when it is missing
			c.checkUpstreamRef(p, b+".upstream", r.Upstream)
		}
		if r.Mirror != nil {
			c.validateMirror(p, b, r.Mirror)
		}
		if r.GRPCWeb {
			c.validateGRPCWeb(p, b, r) // grpcweb.go
		}
		validateRoute(p, b, r)
		sig := matchSignature(r)
		if j, dup := matches[sig]; dup {
			p.add(b+".match", "same priority and match as route %q (routes[%d]), so route %q could never be chosen",
				c.Routes[j].ID, j, r.ID)
		} else {
			matches[sig] = i
		}
	}
}

// validateRoute runs the checks of one route that need no other object (object.go runs
// them alone for a changed route).
func validateRoute(p *problems, b string, r *Route) {
	if r.Split == nil && r.Upstream == "" {
		p.add(b+".upstream", "required: the id of an upstream")
	}
	if r.MaxBodyBytes < 0 {
		p.add(b+".max_body_bytes", "must not be negative (0 means inherit the listener's limit)")
	}
	validateMatch(p, b+".match", r.Match)
	validateRewrite(p, b+".rewrite", r.Rewrite)
	validateRetry(p, b+".retry", r.Retry)
	validateTunnel(p, b, r.Tunnel)
}

func validateMatch(p *problems, b string, m Match) {
	seen := map[string]bool{}
	for i, h := range m.Hosts {
		hp := fmt.Sprintf("%s.hosts[%d]", b, i)
		if err := checkRouteHost(h); err != nil {
			p.add(hp, "%v", err)
		} else if seen[strings.ToLower(h)] {
			p.add(hp, "duplicate host %q", h)
		}
		seen[strings.ToLower(h)] = true
	}
	var kinds []string
	for _, k := range []struct{ name, v string }{{"path", m.Path}, {"path_prefix", m.PathPrefix}, {"path_regex", m.PathRegex}} {
		if k.v != "" {
			kinds = append(kinds, k.name)
		}
	}
	if len(kinds) > 1 {
		p.add(b, "at most one of path, path_prefix, path_regex may be set, got %s", strings.Join(kinds, " and "))
	}
	if m.Path != "" {
		if err := checkPathTemplate(m.Path); err != nil {
			p.add(b+".path", "%v", err)
		}
	}
	if m.PathPrefix != "" {
		if err := checkPath(m.PathPrefix); err != nil {
			p.add(b+".path_prefix", "%v", err)
		} else if strings.ContainsAny(m.PathPrefix, "{}") {
			p.add(b+".path_prefix", "templates such as {id} are only supported in path, not path_prefix")
		}
	}
	checkRegex(p, b+".path_regex", m.PathRegex)
	methods := map[string]bool{}
	for i, meth := range m.Methods {
		mp := fmt.Sprintf("%s.methods[%d]", b, i)
		if !isToken(meth) {
			p.add(mp, "invalid method %q", meth)
		} else if methods[strings.ToUpper(meth)] {
			p.add(mp, "duplicate method %q", meth)
		}
		methods[strings.ToUpper(meth)] = true
	}
	for i, vm := range m.Headers {
		validateValueMatch(p, fmt.Sprintf("%s.headers[%d]", b, i), vm, true)
	}
	for i, vm := range m.Query {
		validateValueMatch(p, fmt.Sprintf("%s.query[%d]", b, i), vm, false)
	}
	for i, vm := range m.TLS {
		vb := fmt.Sprintf("%s.tls[%d]", b, i)
		switch vm.Name {
		case TLSMatchSNI, TLSMatchClientSubject, TLSMatchVersion:
			validateValueMatch(p, vb, vm, false)
		default:
			p.add(vb+".name", "unknown TLS condition %q: want sni, client_cert_subject or version", vm.Name)
		}
	}
}

// Names of Match.TLS conditions.
const (
	TLSMatchSNI           = "sni"
	TLSMatchClientSubject = "client_cert_subject"
	TLSMatchVersion       = "version"
)

func validateValueMatch(p *problems, b string, vm ValueMatch, header bool) {
	switch {
	case vm.Name == "":
		p.add(b+".name", "required")
	case header && !isToken(vm.Name):
		p.add(b+".name", "invalid header name %q", vm.Name)
	case !header && strings.ContainsFunc(vm.Name, isCtlOrSpace):
		p.add(b+".name", "invalid query argument name %q", vm.Name)
	}
	var set []string
	if vm.Exact != nil {
		set = append(set, "exact")
	}
	if vm.Regex != "" {
		set = append(set, "regex")
	}
	if vm.Present != nil {
		set = append(set, "present")
	}
	switch len(set) {
	case 0:
		p.add(b, "one of exact, regex or present is required")
	case 1:
	default:
		p.add(b, "exactly one of exact, regex, present may be set, got %s", strings.Join(set, " and "))
	}
	checkRegex(p, b+".regex", vm.Regex)
}

func validateRewrite(p *problems, b string, rw Rewrite) {
	switch rw.Host {
	case "", HostClient, HostTarget:
		if rw.HostValue != "" {
			p.add(b+".host_value", "only used with host: fixed")
		}
	case HostFixed:
		if rw.HostValue == "" {
			p.add(b+".host_value", "required with host: fixed")
		} else if err := checkHostValue(rw.HostValue); err != nil {
			p.add(b+".host_value", "%v", err)
		}
	default:
		p.add(b+".host", "unknown host mode %q: want client, target or fixed", rw.Host)
	}
	for _, f := range []struct{ name, v string }{{"strip_prefix", rw.StripPrefix}, {"add_prefix", rw.AddPrefix}} {
		if f.v != "" {
			if err := checkPath(f.v); err != nil {
				p.add(b+"."+f.name, "%v", err)
			}
		}
	}
	switch {
	case rw.PathRegex != "" && rw.PathReplacement == "":
		p.add(b+".path_replacement", "required with path_regex")
	case rw.PathRegex == "" && rw.PathReplacement != "":
		p.add(b+".path_regex", "required with path_replacement")
	}
	checkRegex(p, b+".path_regex", rw.PathRegex)
	validateHeaderEdits(p, b+".set_headers", rw.SetHeaders)
	validateHeaderEdits(p, b+".add_headers", rw.AddHeaders)
	for i, h := range rw.RemoveHeaders {
		hp := fmt.Sprintf("%s.remove_headers[%d]", b, i)
		if !isToken(h) {
			p.add(hp, "invalid header name %q", h)
		} else if why := reservedHeader(h, "removed"); why != "" {
			p.add(hp, "%s", why)
		}
	}
}

func validateHeaderEdits(p *problems, b string, headers map[string]string) {
	canon := map[string]string{}
	for _, name := range sortedKeys(headers) {
		hp := b + "." + name
		switch c := http.CanonicalHeaderKey(name); {
		case !isToken(name):
			p.add(hp, "invalid header name %q", name)
		case reservedHeader(name, "set") != "":
			p.add(hp, "%s", reservedHeader(name, "set"))
		case canon[c] != "":
			p.add(hp, "same header as %q (names are case-insensitive)", canon[c])
		default:
			canon[c] = name
		}
		if strings.ContainsAny(headers[name], "\r\n\x00") {
			p.add(hp, "header values must not contain CR, LF or NUL")
		}
	}
}

// hopByHop are the connection-specific headers (RFC 9110 section 7.6.1) the proxy manages.
var hopByHop = []string{"Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Proxy-Connection", "Te", "Trailer", "Transfer-Encoding", "Upgrade"}

// reservedHeader says why header h may not be set or removed by a rewrite, or "".
func reservedHeader(h, verb string) string {
	c := http.CanonicalHeaderKey(h)
	switch {
	case slices.Contains(hopByHop, c):
		return fmt.Sprintf("%s is a hop-by-hop header; Sluice manages it per connection, so it cannot be %s", h, verb)
	case c == "Host":
		return fmt.Sprintf("the Host header cannot be %s here; use rewrite.host (client, target or fixed with host_value)", verb)
	case c == "Content-Length":
		return fmt.Sprintf("Content-Length frames the request body; Sluice sets it, so it cannot be %s", verb)
	}
	return ""
}

func checkRegex(p *problems, path, expr string) {
	if expr == "" {
		return
	}
	if _, err := regexp.Compile(expr); err != nil {
		p.add(path, "invalid regular expression: %v", strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
}

// matchSignature is equal for two routes whose priority and match are the same
// (lists compared as sets, header names case-insensitively).
func matchSignature(r *Route) string {
	m := r.Match
	norm := func(list []string, f func(string) string) string {
		out := make([]string, len(list))
		for i, s := range list {
			out[i] = strconv.Quote(f(s))
		}
		slices.Sort(out)
		return strings.Join(slices.Compact(out), ",")
	}
	vms := func(list []ValueMatch, f func(string) string) string {
		out := make([]string, len(list))
		for i, vm := range list {
			out[i] = strconv.Quote(f(vm.Name)) + "=" + valueCondition(vm)
		}
		slices.Sort(out)
		return strings.Join(slices.Compact(out), ",")
	}
	same := func(s string) string { return s }
	return strings.Join([]string{
		strconv.Itoa(r.Priority),
		norm(m.Hosts, strings.ToLower),
		strconv.Quote(m.Path), strconv.Quote(m.PathPrefix), strconv.Quote(m.PathRegex),
		norm(m.Methods, strings.ToUpper),
		vms(m.Headers, http.CanonicalHeaderKey),
		vms(m.Query, same),
		vms(m.TLS, same),
	}, "|")
}

func valueCondition(vm ValueMatch) string {
	var b strings.Builder
	if vm.Exact != nil {
		b.WriteString("exact:" + strconv.Quote(*vm.Exact))
	}
	if vm.Regex != "" {
		b.WriteString("regex:" + strconv.Quote(vm.Regex))
	}
	if vm.Present != nil {
		b.WriteString("present:" + strconv.FormatBool(*vm.Present))
	}
	return b.String()
}
