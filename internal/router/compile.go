package router

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"

	"sluice/internal/config"
)

// Errors wrapped by [RouteError] for problems found by [Compile]. Invalid regular
// expressions wrap the regexp package's error instead.
var (
	ErrInvalidHost      = errors.New("invalid host")
	ErrInvalidPath      = errors.New("invalid path")
	ErrInvalidCondition = errors.New("invalid condition")
)

// RouteError is a route that [Compile] rejected.
type RouteError struct {
	Index int    // position in the routes slice
	ID    string // the route's ID
	Field string // the offending field, e.g. "match.path" or "match.headers[1]"
	Err   error
}

func (e *RouteError) Error() string {
	return fmt.Sprintf("routes[%d] (id %q): %s: %v", e.Index, e.ID, e.Field, e.Err)
}

func (e *RouteError) Unwrap() error { return e.Err }

// Compile builds the lookup structure for routes. Every route is compiled; the error
// joins a [*RouteError] for each problem found.
func Compile(routes []*config.Route) (*Table, error) {
	t := &Table{
		exact:  make(map[string]*bucket),
		wild:   make(map[string]*bucket),
		n:      len(routes),
		routes: make([]*route, len(routes)),
		pos:    make([]int32, len(routes)),
		order:  make([]int32, len(routes)),
		unique: true,
	}
	ids := make(map[string]bool, len(routes))
	var errs []error
	for i := range routes {
		r, err := compileRoute(i, i, routes[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		t.routes[i], t.pos[i], t.order[i] = r, int32(i), int32(i)
		if ids[r.id] {
			t.unique = false // Update cannot name routes by id
		}
		ids[r.id] = true
		t.place(r, func(b *bucket, e entry) *bucket { b.add(e, r.spec); return b })
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, b := range t.exact {
		b.sort(t.pos)
	}
	for _, b := range t.wild {
		b.sort(t.pos)
	}
	if t.anyHost != nil {
		t.anyHost.sort(t.pos)
	}
	return t, nil
}

// compileRoute compiles cr, the route at index i of the routes given, into slot.
func compileRoute(i, slot int, cr *config.Route) (*route, error) {
	r := &route{slot: slot, id: cr.ID, src: cr}
	for _, m := range cr.Match.Methods {
		r.methods = append(r.methods, strings.ToUpper(m)) // methods are tokens; config is not case-sensitive
	}
	fail := func(field string, err error) error {
		return &RouteError{Index: i, ID: cr.ID, Field: field, Err: err}
	}
	var err error
	var field string
	if r.headers, field, err = compileConds("headers", cr.Match.Headers); err != nil {
		return nil, fail("match."+field, err)
	}
	if r.query, field, err = compileConds("query", cr.Match.Query); err != nil {
		return nil, fail("match."+field, err)
	}
	if r.tls, field, err = compileConds("tls", cr.Match.TLS); err != nil {
		return nil, fail("match."+field, err)
	}
	if r.spec, field, err = compilePath(&cr.Match, r); err != nil {
		return nil, fail("match."+field, err)
	}
	if r.hosts, err = compileHosts(cr.Match.Hosts); err != nil {
		return nil, fail("match.hosts", err)
	}
	p := r.spec
	r.best = rank{priority: cr.Priority, path: p.kind, pathA: p.a, pathB: p.b, slot: slot}
	for _, n := range []int{len(r.methods), len(r.headers), len(r.query), len(r.tls)} {
		if n > 0 {
			r.best.conds++
		}
	}
	for _, h := range r.hosts {
		if e := hostRank(h); e > r.best.host {
			r.best.host = e
		}
	}
	return r, nil
}

// hostRank is the rank.host of a compiled host: hostExact, or 1+len(suffix) for "*.suffix".
func hostRank(h string) int {
	if suffix, ok := strings.CutPrefix(h, "*."); ok {
		return 1 + len(suffix)
	}
	return hostExact
}

// place calls put for each bucket of r (its hosts' buckets, or the any-host one) with the
// entry r has there, and stores the bucket put returns in its place (created empty when
// missing; removed when put returns nil).
func (t *Table) place(r *route, put func(*bucket, entry) *bucket) {
	if len(r.hosts) == 0 {
		e := entry{route: r, rank: r.best}
		t.anyHost = put(orEmpty(t.anyHost), e)
		return
	}
	for _, h := range r.hosts {
		e := entry{route: r, rank: r.best}
		e.rank.host = hostRank(h)
		m, key := t.exact, h
		if suffix, ok := strings.CutPrefix(h, "*."); ok {
			m, key = t.wild, suffix
		}
		if b := put(orEmpty(m[key]), e); b != nil {
			m[key] = b
		} else {
			delete(m, key)
		}
	}
}

func orEmpty(b *bucket) *bucket {
	if b == nil {
		return &bucket{}
	}
	return b
}

// add places e into b according to its route's path condition p.
func (b *bucket) add(e entry, p pathSpec) {
	switch {
	case p.kind == pathNone:
		b.anyPath = append(b.anyPath, e)
	case p.kind == pathRegex:
		b.regex = append(b.regex, e)
	default:
		b.root.insert(p.steps, e, p.list)
	}
}

// sort orders every entry list of b best first.
func (b *bucket) sort(pos []int32) {
	b.root.sort(pos)
	sortEntries(b.regex, pos)
	sortEntries(b.anyPath, pos)
}

// compileHosts lower-cases and checks hosts, dropping duplicates.
func compileHosts(hosts []string) ([]string, error) {
	var out []string
	for _, h := range hosts {
		name := lowerString(h)
		if strings.HasPrefix(name, "[") && strings.HasSuffix(name, "]") {
			name = name[1 : len(name)-1] // IPv6 literal, stored as the request side strips it
		}
		if err := checkHost(name); err != nil {
			return nil, fmt.Errorf("%w %q: %w", ErrInvalidHost, h, err)
		}
		if !slices.Contains(out, name) {
			out = append(out, name)
		}
	}
	return out, nil
}

// checkHost rejects host patterns that could never match a request host.
func checkHost(h string) error {
	rest, wild := strings.CutPrefix(h, "*.")
	switch {
	case h == "":
		return errors.New("empty")
	case wild && rest == "":
		return errors.New("wildcard without a suffix")
	case strings.Contains(rest, "*"):
		return errors.New(`"*" is allowed only as a leading "*." label`)
	case strings.Count(rest, ":") == 1:
		return errors.New("must not include a port")
	case strings.ContainsAny(rest, "/[] "):
		return errors.New("not a host name")
	}
	return nil
}

// compileConds compiles header or query conditions. On error it also names the field.
func compileConds(kind string, vms []config.ValueMatch) ([]cond, string, error) {
	var out []cond
	for i, vm := range vms {
		field := fmt.Sprintf("%s[%d]", kind, i)
		c, err := compileCond(vm)
		if err != nil {
			return nil, field, err
		}
		out = append(out, c)
	}
	return out, "", nil
}

// compileCond compiles one ValueMatch, which must set exactly one of its tests.
func compileCond(vm config.ValueMatch) (cond, error) {
	c := cond{name: vm.Name}
	n := 0
	if vm.Exact != nil {
		n++
		c.kind, c.exact = condExact, *vm.Exact
	}
	if vm.Regex != "" {
		n++
		re, err := regexp.Compile(vm.Regex)
		if err != nil {
			return cond{}, fmt.Errorf("regex: %w", err)
		}
		c.kind, c.re = condRegex, re
	}
	if vm.Present != nil {
		n++
		c.kind = condAbsent
		if *vm.Present {
			c.kind = condPresent
		}
	}
	switch {
	case vm.Name == "":
		return cond{}, fmt.Errorf("%w: name is required", ErrInvalidCondition)
	case n != 1:
		return cond{}, fmt.Errorf("%w %q: exactly one of exact, regex, present is required", ErrInvalidCondition, vm.Name)
	}
	return c, nil
}
