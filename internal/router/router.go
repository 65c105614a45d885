package router

import (
	"net/url"
	"strings"
)

// Input is the part of a request that routes are matched against.
type Input struct {
	Method string
	// Host is the Host header or authority as received; it may include ":port" and upper case.
	Host string
	// Path is the request path without the query, as received (not decoded further).
	Path string
	// Query is the raw query without '?', "" if none.
	Query string
	// Header looks a request header up by name, case-insensitively. It may be nil, in which
	// case every header is absent.
	Header func(name string) (value string, ok bool)
	// TLS looks up a fact of the client connection's TLS session by the names of
	// config.Match.TLS ("sni", "client_cert_subject", "version"). nil over plain HTTP, where
	// every fact is absent.
	TLS func(name string) (value string, ok bool)
}

// Param is one path parameter captured by a template such as "/users/{id}".
type Param struct{ Name, Value string }

// Params are the path parameters of a matched route, in template order.
type Params []Param

// Get returns the value of the parameter named name, or "" if there is none.
func (ps Params) Get(name string) string {
	for _, p := range ps {
		if p.Name == name {
			return p.Value
		}
	}
	return ""
}

// Table is the compiled form of one config version's routes. It is immutable after
// [Compile] and safe for concurrent use by any number of goroutines.
type Table struct {
	exact   map[string]*bucket // lower-case host without port -> routes listing it
	wild    map[string]*bucket // "example.com" -> routes listing "*.example.com"
	anyHost *bucket            // routes without hosts; nil if there are none
	n       int                // number of routes given to Compile
	routes  []*route           // by slot; nil for a free slot
	pos     []int32            // by slot: the route's index in the routes given; -1 for a free slot
	order   []int32            // by index in the routes given: the route's slot
	unique  bool               // the routes' ids are unique (else Update compiles whole)
	free    []int              // free slots, reused by Update
}

// Len returns the number of routes the table was compiled from.
func (t *Table) Len() int { return t.n }

// Match returns the index into the routes slice given to [Compile] of the route that wins
// for in under the precedence rules (see the package documentation), with the path
// parameters it captured. ok is false when no route matches.
//
// Match allocates only for the returned Params of a template route, and, when a route
// with query conditions is a contender, to parse the query once.
func (t *Table) Match(in *Input) (index int, params Params, ok bool) {
	m := matcher{in: in, pos: t.pos}
	t.collect(&m, hostname(in.Host))
	if m.best == nil {
		return -1, nil, false
	}
	r := m.best.route
	if r.tmpl != nil {
		params = r.tmpl.extract(in.Path)
	}
	return int(t.pos[r.slot]), params, true
}

// collect visits every bucket that applies to host: the exact one, the wildcard ones for
// each proper suffix, and the any-host one. Buckets are visited from most to least
// specific host so that the rank check prunes most candidates of the later ones.
func (t *Table) collect(m *matcher, host string) {
	var buf [256]byte
	if len(host) <= len(buf) {
		n := copy(buf[:], host)
		lowerASCII(buf[:n])
		lc := buf[:n]
		// Indexing with string(bytes) does not allocate.
		if b := t.exact[string(lc)]; b != nil {
			m.bucket(b)
		}
		if len(t.wild) > 0 {
			for i := 0; i < n; i++ {
				if lc[i] != '.' {
					continue
				}
				if b := t.wild[string(lc[i+1:])]; b != nil {
					m.bucket(b)
				}
			}
		}
	} else {
		t.collectLong(m, lowerString(host))
	}
	if t.anyHost != nil {
		m.bucket(t.anyHost)
	}
}

// collectLong is collect's host lookup for names too long for the stack buffer.
func (t *Table) collectLong(m *matcher, host string) {
	if b := t.exact[host]; b != nil {
		m.bucket(b)
	}
	for i := 0; i < len(host) && len(t.wild) > 0; i++ {
		if host[i] != '.' {
			continue
		}
		if b := t.wild[host[i+1:]]; b != nil {
			m.bucket(b)
		}
	}
}

// lowerASCII lower-cases b in place. Host names are ASCII (IDNs arrive as punycode).
func lowerASCII(b []byte) {
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + ('a' - 'A')
		}
	}
}

// lowerString is strings.ToLower for ASCII only, so that Compile and Match fold case alike
// and invalid UTF-8 is left alone.
func lowerString(s string) string {
	b := []byte(s)
	lowerASCII(b)
	return string(b)
}

// hostname strips the port from a Host header value: "a.com:80" -> "a.com",
// "[::1]:8080" -> "::1", "[::1]" -> "::1". A bare IPv6 literal ("::1") is kept whole.
func hostname(h string) string {
	if strings.HasPrefix(h, "[") {
		if i := strings.IndexByte(h, ']'); i > 0 {
			return h[1:i]
		}
		return h
	}
	i := strings.IndexByte(h, ':')
	if i >= 0 && strings.IndexByte(h[i+1:], ':') < 0 {
		return h[:i]
	}
	return h
}

// matcher is the state of one Match call. It lives on the caller's stack.
type matcher struct {
	in      *Input
	pos     []int32 // the table's positions by slot, for the rank's last rule
	best    *entry
	query   url.Values
	queryOK bool // query has been parsed
}

// bucket considers every route of b that matches the request path.
func (m *matcher) bucket(b *bucket) {
	p := m.in.Path
	if len(p) > 0 && p[0] == '/' {
		m.walk(&b.root, p, 0)
	}
	m.consider(b.regex)
	m.consider(b.anyPath)
}

// consider makes the best route of es that beats the current best and whose conditions
// hold the new best. es is sorted best first, so the scan stops at the first entry that
// cannot win or is accepted.
func (m *matcher) consider(es []entry) {
	for i := range es {
		e := &es[i]
		if m.best != nil && !e.rank.beats(m.best.rank, m.pos) {
			return
		}
		if e.route.accepts(m) {
			m.best = e
			return
		}
	}
}

// header looks a request header up; a nil Header func means no headers.
func (m *matcher) header(name string) (string, bool) {
	if m.in.Header == nil {
		return "", false
	}
	return m.in.Header(name)
}

// queryArg returns the first value of the query argument name, parsing the query on
// first use with [url.ParseQuery] semantics (malformed pairs are skipped).
func (m *matcher) queryArg(name string) (string, bool) {
	if !m.queryOK {
		m.query, _ = url.ParseQuery(m.in.Query)
		m.queryOK = true
	}
	vs := m.query[name]
	if len(vs) == 0 {
		return "", false
	}
	return vs[0], true
}
