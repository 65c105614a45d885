package router

import (
	"cmp"
	"regexp"
	"slices"

	"sluice/internal/config"
)

// route is one compiled config.Route.
type route struct {
	slot    int           // its place in Table.routes and Table.pos; stable across Update
	id      string        //
	src     *config.Route // what it was compiled from (Update: the same config route is untouched)
	best    rank          // its best rank over its hosts (precedence.go)
	hosts   []string
	spec    pathSpec // where its entries sit in each of its buckets (update.go removes them)
	methods []string
	headers []cond
	query   []cond
	tls     []cond
	pathRe  *regexp.Regexp // for path_regex routes
	tmpl    *template      // for templates with parameters
}

// accepts reports whether every condition of r other than host and (tree) path holds.
// Cheap checks come first.
func (r *route) accepts(m *matcher) bool {
	if len(r.methods) > 0 && !slices.Contains(r.methods, m.in.Method) {
		return false
	}
	if r.pathRe != nil && !r.pathRe.MatchString(m.in.Path) {
		return false
	}
	for i := range r.headers {
		c := &r.headers[i]
		if !c.holds(m.header(c.name)) {
			return false
		}
	}
	for i := range r.query {
		c := &r.query[i]
		if !c.holds(m.queryArg(c.name)) {
			return false
		}
	}
	for i := range r.tls {
		c := &r.tls[i]
		v, ok := "", false
		if m.in.TLS != nil {
			v, ok = m.in.TLS(c.name)
		}
		if !c.holds(v, ok) {
			return false
		}
	}
	return true
}

// condKind is the test a cond applies.
type condKind uint8

const (
	condExact condKind = iota
	condRegex
	condPresent
	condAbsent
)

// cond is one compiled config.ValueMatch.
type cond struct {
	name  string
	kind  condKind
	exact string
	re    *regexp.Regexp
}

// holds reports whether a header or query argument with value v (present if ok)
// satisfies c.
func (c *cond) holds(v string, ok bool) bool {
	switch c.kind {
	case condExact:
		return ok && v == c.exact
	case condRegex:
		return ok && c.re.MatchString(v)
	case condPresent:
		return ok
	default:
		return !ok
	}
}

// template is the parameter layout of a path template.
type template struct {
	params []tparam // in segment order
}

// tparam is one "{name}" or final "{name...}" of a template.
type tparam struct {
	name string
	seg  int  // index of the path segment it captures (0 is the one after the first '/')
	rest bool // captures the rest of the path from seg on, possibly empty
}

// Host ranks. A wildcard ranks 1+len(suffix), so a longer suffix wins; exact beats all.
const (
	hostAny   = 0
	hostExact = 1 << 30
)

// pathKind orders path conditions from least to most specific.
type pathKind uint8

const (
	pathNone pathKind = iota
	pathRegex
	pathPrefix
	pathTemplate
	pathExact
)

// rank is the precedence key of a route in one bucket; a greater rank wins.
// Fields are compared in order.
type rank struct {
	priority int
	host     int      // hostAny, 1+len(wildcard suffix), or hostExact
	path     pathKind //
	pathA    int      // template: -number of params; prefix: length
	pathB    int      // template: length of the literal part before the first param
	conds    int      // how many of methods, headers, query, tls are given
	slot     int      // the route's slot: its position in the file is pos[slot]; lower wins
}

// compare returns +1 if a wins over b, -1 if b wins, 0 if they are equal. pos maps a slot
// to the route's position in the routes given (Table.pos): the last rule compares
// positions, which an Update may shift without touching the entries.
func (a rank) compare(b rank, pos []int32) int {
	if c := cmp.Or(
		cmp.Compare(a.priority, b.priority),
		cmp.Compare(a.host, b.host),
		cmp.Compare(a.path, b.path),
		cmp.Compare(a.pathA, b.pathA),
		cmp.Compare(a.pathB, b.pathB),
		cmp.Compare(a.conds, b.conds),
	); c != 0 {
		return c
	}
	return cmp.Compare(pos[b.slot], pos[a.slot])
}

// beats reports whether a wins over b.
func (a rank) beats(b rank, pos []int32) bool { return a.compare(b, pos) > 0 }

// entry is a route placed in a bucket, with its rank there.
type entry struct {
	route *route
	rank  rank
}
