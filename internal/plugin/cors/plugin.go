// Package cors is the cors plugin: it answers CORS preflights itself, before any auth plugin
// runs (Kong/kong#1292: a preflight carries no credentials, and an auth plugin that refuses
// it breaks every cross-origin call), and adds the CORS response fields to actual
// cross-origin requests from allowed origins, replacing any the upstream sent.
//
// A preflight (OPTIONS with Origin and Access-Control-Request-Method) from an allowed
// origin, for an allowed method and allowed headers, is answered 204 with the
// Access-Control-Allow-* fields; any other preflight is answered 403 cors_forbidden. An
// actual request from an origin not allowed goes on without CORS fields (the browser then
// withholds the response from the script); requests without Origin are not CORS.
package cors

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"sluice/internal/plugin"
	"sluice/internal/reason"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StagePreflight, New: New})
}

// Name is the plugin's name in configs.
const Name = "cors"

var (
	reToken  = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`)
	reOrigin = regexp.MustCompile(`^(https?)://(\*\.)?[A-Za-z0-9.-]+(:[0-9]{1,5})?$`)
)

// CORS is one cors instance.
type CORS struct {
	anyOrigin   bool
	exact       []string    // lower-cased origins
	wild        [][2]string // {"https://", ".example.com"} of "https://*.example.com"
	methods     []string
	headers     []string // allowed request headers, as configured
	anyHeader   bool
	methodsList string // the Access-Control-Allow-Methods value
	headersList string
	exposeList  string
	credentials bool
	maxAge      string // "" when not sent
	slot        plugin.Slot
	forbidden   *reason.Error
}

// New builds a cors instance.
func New(b *plugin.Build) (any, error) {
	c := Config{AllowMethods: []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}}
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	p := &CORS{credentials: c.AllowCredentials, slot: b.Slot(),
		forbidden: reason.New(403, reason.CORSOriginForbidden, "", errors.New("CORS preflight not allowed"))}
	var errs []error
	if len(c.AllowOrigins) == 0 {
		errs = append(errs, b.Errorf("allow_origins", "at least one origin is required (\"*\" for any)"))
	}
	for i, o := range c.AllowOrigins {
		field := fmt.Sprintf("allow_origins[%d]", i)
		switch {
		case o == "*":
			p.anyOrigin = true
			if c.AllowCredentials {
				errs = append(errs, b.Errorf(field, "\"*\" cannot be used with allow_credentials: list the origins"))
			}
		case !reOrigin.MatchString(o):
			errs = append(errs, b.Errorf(field, "invalid origin %q: want scheme://host[:port], such as \"https://app.example.com\" or \"https://*.example.com\"", o))
		case strings.Contains(o, "://*."):
			scheme, host, _ := strings.Cut(strings.ToLower(o), "://*")
			p.wild = append(p.wild, [2]string{scheme + "://", host})
		default:
			p.exact = append(p.exact, strings.ToLower(o))
		}
	}
	for i, m := range c.AllowMethods {
		if !reToken.MatchString(m) {
			errs = append(errs, b.Errorf(fmt.Sprintf("allow_methods[%d]", i), "invalid method %q", m))
		}
	}
	for i, h := range c.AllowHeaders {
		if h == "*" {
			p.anyHeader = true
		} else if !reToken.MatchString(h) {
			errs = append(errs, b.Errorf(fmt.Sprintf("allow_headers[%d]", i), "invalid header name %q", h))
		}
	}
	for i, h := range c.ExposeHeaders {
		if !reToken.MatchString(h) {
			errs = append(errs, b.Errorf(fmt.Sprintf("expose_headers[%d]", i), "invalid header name %q", h))
		}
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.methods, p.headers = c.AllowMethods, c.AllowHeaders
	p.methodsList = strings.Join(c.AllowMethods, ", ")
	p.headersList = strings.Join(c.AllowHeaders, ", ")
	p.exposeList = strings.Join(c.ExposeHeaders, ", ")
	if s := int64(c.MaxAge.D().Seconds()); s > 0 {
		p.maxAge = strconv.FormatInt(s, 10)
	}
	return p, nil
}

// Request answers preflights and marks actual cross-origin requests for the response phase.
func (p *CORS) Request(r *plugin.Request) error {
	h := r.Header()
	origin, ok := h.Get("Origin")
	if !ok {
		return nil
	}
	allowed := p.originAllowed(origin)
	if !p.anyOrigin {
		r.AddResponseField("Vary", "Origin") // the answer depends on Origin: caches must know
	}
	reqMethod, preflight := h.Get("Access-Control-Request-Method")
	if preflight && r.Method() == "OPTIONS" {
		if !allowed || !p.methodAllowed(reqMethod) || !p.headersAllowed(h) {
			return p.forbidden
		}
		p.allowOrigin(r, origin)
		r.AddResponseField("Access-Control-Allow-Methods", p.methodsList)
		if p.anyHeader {
			if v, ok := h.Get("Access-Control-Request-Headers"); ok {
				r.AddResponseFieldBytes("Access-Control-Allow-Headers", v)
			}
		} else if p.headersList != "" {
			r.AddResponseField("Access-Control-Allow-Headers", p.headersList)
		}
		if p.maxAge != "" {
			r.AddResponseField("Access-Control-Max-Age", p.maxAge)
		}
		return r.Answer(204, reason.CORSPreflight)
	}
	if allowed {
		p.allowOrigin(r, origin)
		if p.exposeList != "" {
			r.AddResponseField("Access-Control-Expose-Headers", p.exposeList)
		}
		r.Slot(p.slot).N = 1 // the response phase replaces the upstream's CORS fields
	}
	return nil
}

func (p *CORS) allowOrigin(r *plugin.Request, origin []byte) {
	if p.anyOrigin && !p.credentials {
		r.AddResponseField("Access-Control-Allow-Origin", "*")
	} else {
		r.AddResponseFieldBytes("Access-Control-Allow-Origin", origin)
	}
	if p.credentials {
		r.AddResponseField("Access-Control-Allow-Credentials", "true")
	}
}

// Response removes the upstream's own CORS fields from a response to an allowed
// cross-origin request: the gateway's (added after this) are the ones that count.
func (p *CORS) Response(r *plugin.Request, status int, h *plugin.Header) {
	if r.Slot(p.slot).N == 0 {
		return
	}
	h.Del("Access-Control-Allow-Origin")
	h.Del("Access-Control-Allow-Credentials")
	h.Del("Access-Control-Expose-Headers")
}

func (p *CORS) originAllowed(o []byte) bool {
	if p.anyOrigin {
		return true
	}
	for _, e := range p.exact {
		if plugin.EqualFold(o, e) {
			return true
		}
	}
	for _, w := range p.wild {
		scheme, suffix := w[0], w[1]
		if len(o) > len(scheme)+len(suffix) && plugin.EqualFold(o[:len(scheme)], scheme) &&
			plugin.EqualFold(o[len(o)-len(suffix):], suffix) {
			return true
		}
	}
	return false
}

func (p *CORS) methodAllowed(m []byte) bool {
	for _, a := range p.methods {
		if string(m) == a { // methods are case-sensitive (RFC 9110 §9.1)
			return true
		}
	}
	return false
}

// headersAllowed reports whether every header a preflight asks for is allowed.
func (p *CORS) headersAllowed(h *plugin.Header) bool {
	if p.anyHeader {
		return true
	}
	for i := range h.Fields {
		f := &h.Fields[i]
		if !plugin.EqualFold(f.Name, "Access-Control-Request-Headers") {
			continue
		}
		list := f.Value
		for len(list) > 0 {
			var tok []byte
			tok, list = nextToken(list)
			if len(tok) > 0 && !p.headerAllowed(tok) {
				return false
			}
		}
	}
	return true
}

func (p *CORS) headerAllowed(name []byte) bool {
	for _, a := range p.headers {
		if plugin.EqualFold(name, a) {
			return true
		}
	}
	return false
}

func nextToken(list []byte) (tok, rest []byte) {
	i := 0
	for i < len(list) && list[i] != ',' {
		i++
	}
	tok, rest = list[:i], list[i:]
	if len(rest) > 0 {
		rest = rest[1:]
	}
	for len(tok) > 0 && (tok[0] == ' ' || tok[0] == '\t') {
		tok = tok[1:]
	}
	for len(tok) > 0 && (tok[len(tok)-1] == ' ' || tok[len(tok)-1] == '\t') {
		tok = tok[:len(tok)-1]
	}
	return tok, rest
}

var (
	_ plugin.RequestFilter  = (*CORS)(nil)
	_ plugin.ResponseFilter = (*CORS)(nil)
)
