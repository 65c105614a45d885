// Package redirect is the redirect plugin: the gateway answers a route's requests with a
// 3xx and a Location built from the request (to https, to another host, port or path, a
// regex rewrite of the path, the query kept, dropped or extended), without contacting the
// upstream. The answer is not an error: the access log line says plugin "redirect", reason
// "redirect", and sluice_plugin_answers_total counts it.
//
// A request whose Location would be its own URL (a "scheme: https" route that also serves
// the TLS listener) is not redirected but forwarded: a redirect to itself would loop.
package redirect

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"sluice/internal/plugin"
	"sluice/internal/reason"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StagePreflight, New: New})
}

// Name is the plugin's name in configs.
const Name = "redirect"

var (
	reHost = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$`)
	// rePath and reQuery allow the characters of a URI's path and query (RFC 3986 §3.3,
	// §3.4), '%' escapes included.
	rePath  = regexp.MustCompile(`^/[A-Za-z0-9\-._~!$&'()*+,;=:@/%]*$`)
	reQuery = regexp.MustCompile(`^[A-Za-z0-9\-._~!$&'()*+,;=:@/?%]+$`)
)

// Redirect is one redirect instance.
type Redirect struct {
	status      int
	scheme      string // "" keeps the request's
	host        string // "" keeps the request's
	port        string // "" see portFor
	path        string
	re          *regexp.Regexp
	repl        string
	dropQuery   bool
	appendQuery string
	noHost      *reason.Error
}

// New builds a redirect instance.
func New(b *plugin.Build) (any, error) {
	c := Config{Status: 302, Query: "keep"}
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	var errs []error
	bad := func(field, format string, args ...any) { errs = append(errs, b.Errorf(field, format, args...)) }
	switch c.Status {
	case 301, 302, 303, 307, 308:
	default:
		bad("status", "%d is not a redirect status: want 301, 302, 303, 307 or 308", c.Status)
	}
	if c.Scheme != "" && c.Scheme != "http" && c.Scheme != "https" {
		bad("scheme", "%q: want http or https", c.Scheme)
	}
	if c.Host != "" && !reHost.MatchString(c.Host) {
		bad("host", "%q is not a host name or IP (write the port in port, IPv6 in brackets)", c.Host)
	}
	if c.Port < 0 || c.Port > 65535 {
		bad("port", "%d is not a port (1-65535; 0: see the docs)", c.Port)
	}
	if c.Path != "" && !rePath.MatchString(c.Path) {
		bad("path", "%q: want an absolute path (\"/...\") of URI characters, without query", c.Path)
	}
	p := &Redirect{status: c.Status, scheme: c.Scheme, host: c.Host, path: c.Path,
		repl: c.PathReplacement, dropQuery: c.Query == "drop", appendQuery: c.AppendQuery,
		noHost: reason.New(400, reason.BadRequest, "", errors.New("redirect: the request has no Host to redirect to"))}
	if c.Port > 0 {
		p.port = strconv.Itoa(c.Port)
	}
	switch {
	case c.PathRegex != "" && c.Path != "":
		bad("path", "not with path_regex: write the fixed path as path_replacement")
	case c.PathRegex != "" && c.PathReplacement == "":
		bad("path_replacement", "required with path_regex")
	case c.PathRegex == "" && c.PathReplacement != "":
		bad("path_regex", "required with path_replacement")
	case c.PathRegex != "":
		if strings.ContainsFunc(c.PathReplacement, func(r rune) bool { return r <= ' ' || r == 0x7f || r == '?' || r == '#' }) {
			bad("path_replacement", "%q: no spaces, control characters, '?' or '#' (use append_query for the query)", c.PathReplacement)
		}
		re, err := regexp.Compile(c.PathRegex)
		if err != nil {
			bad("path_regex", "%v", err)
		}
		p.re = re
	}
	if c.Query != "keep" && c.Query != "drop" {
		bad("query", "%q: want keep or drop", c.Query)
	}
	if c.AppendQuery != "" && (!reQuery.MatchString(c.AppendQuery) || strings.HasPrefix(c.AppendQuery, "&") || strings.HasPrefix(c.AppendQuery, "?")) {
		bad("append_query", "%q: want query arguments such as \"from=legacy&v=2\" (URI characters, no leading ? or &)", c.AppendQuery)
	}
	if c.Scheme == "" && c.Host == "" && c.Port == 0 && c.Path == "" && c.PathRegex == "" && c.Query == "keep" && c.AppendQuery == "" {
		bad("", "nothing to change: set scheme, host, port, path, path_regex, query: drop or append_query")
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

var bufs = sync.Pool{New: func() any { b := make([]byte, 0, 256); return &b }}

// Request answers with the redirect, or lets the request go on when path_regex does not
// match or the Location would be the request's own URL.
func (p *Redirect) Request(r *plugin.Request) error {
	path := r.Path()
	if p.re != nil {
		if !p.re.MatchString(path) {
			return nil
		}
		path = p.re.ReplaceAllString(path, p.repl)
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
	} else if p.path != "" {
		path = p.path
	}
	reqScheme := "http"
	if r.TLS() != nil {
		reqScheme = "https"
	}
	scheme := p.scheme
	if scheme == "" {
		scheme = reqScheme
	}
	reqHost, reqPort := splitHostPort(r.Host())
	host, port := p.host, p.port
	if host == "" {
		host = reqHost
	}
	if host == "" {
		return p.noHost // an HTTP/1.0 request without Host: no URL to send it to
	}
	if port == "" && p.host == "" && scheme == reqScheme {
		port = reqPort
	}
	if port == defaultPort(scheme) {
		port = ""
	}
	query := r.Query()
	if p.dropQuery {
		query = ""
	}
	if scheme == reqScheme && host == reqHost && port == reqPort && path == r.Path() &&
		query == r.Query() && p.appendQuery == "" {
		return nil // a redirect to itself would loop
	}
	bp := bufs.Get().(*[]byte)
	loc := append((*bp)[:0], scheme...)
	loc = append(loc, "://"...)
	loc = append(loc, host...)
	if port != "" {
		loc = append(loc, ':')
		loc = append(loc, port...)
	}
	loc = append(loc, path...)
	if query != "" || p.appendQuery != "" {
		loc = append(loc, '?')
		loc = append(loc, query...)
		if query != "" && p.appendQuery != "" {
			loc = append(loc, '&')
		}
		loc = append(loc, p.appendQuery...)
	}
	r.AddResponseFieldBytes("Location", loc) // copies
	*bp = loc
	bufs.Put(bp)
	return r.Answer(p.status, reason.Redirect)
}

// splitHostPort splits a Host value into host and port ("" when none): "a.example:8080",
// "[::1]:8080", "a.example".
func splitHostPort(h string) (host, port string) {
	i := strings.LastIndexByte(h, ':')
	if i < 0 || strings.LastIndexByte(h, ']') > i {
		return h, ""
	}
	return h[:i], h[i+1:]
}

func defaultPort(scheme string) string {
	if scheme == "https" {
		return "443"
	}
	return "80"
}

var _ plugin.RequestFilter = (*Redirect)(nil)
