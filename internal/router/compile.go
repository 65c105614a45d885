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
func Compile(routes []config.Route) (*Table, error) {
	t := &Table{
		exact: make(map[string]*bucket),
		wild:  make(map[string]*bucket),
		n:     len(routes),
		best:  make([]rank, len(routes)),
		ids:   make([]string, len(routes)),
	}
	var errs []error
	for i := range routes {
		if err := t.add(i, &routes[i]); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, b := range t.exact {
		b.sort()
	}
	for _, b := range t.wild {
		b.sort()
	}
	if t.anyHost != nil {
		t.anyHost.sort()
	}
	return t, nil
}

// add compiles route i and places it into the bucket of each of its hosts.
func (t *Table) add(i int, cr *config.Route) error {
	r := &route{index: i, id: cr.ID}
	for _, m := range cr.Match.Methods {
		r.methods = append(r.methods, strings.ToUpper(m)) // methods are tokens; config is not case-sensitive
	}
	fail := func(field string, err error) error {
		return &RouteError{Index: i, ID: cr.ID, Field: field, Err: err}
	}
	var err error
	var field string
	if r.headers, field, err = compileConds("headers", cr.Match.Headers); err != nil {
		return fail("match."+field, err)
	}
	if r.query, field, err = compileConds("query", cr.Match.Query); err != nil {
		return fail("match."+field, err)
	}
	if r.tls, field, err = compileConds("tls", cr.Match.TLS); err != nil {
		return fail("match."+field, err)
	}
	p, field, err := compilePath(&cr.Match, r)
	if err != nil {
		return fail("match."+field, err)
	}
	hosts, err := compileHosts(cr.Match.Hosts)
	if err != nil {
		return fail("match.hosts", err)
	}
	base := rank{priority: cr.Priority, path: p.kind, pathA: p.a, pathB: p.b, index: i}
	for _, n := range []int{len(r.methods), len(r.headers), len(r.query), len(r.tls)} {
		if n > 0 {
			base.conds++
		}
	}
	t.best[i], t.ids[i] = base, cr.ID
	if len(hosts) > 0 {
		t.best[i].host = hostExact + 1 // below, the best host replaces this
	}
	if len(hosts) == 0 {
		if t.anyHost == nil {
			t.anyHost = &bucket{}
		}
		t.anyHost.add(r, base, p)
	}
	for _, h := range hosts {
		e := base
		m, key := t.exact, h
		e.host = hostExact
		if suffix, ok := strings.CutPrefix(h, "*."); ok {
			m, key = t.wild, suffix
			e.host = 1 + len(suffix)
		}
		b := m[key]
		if b == nil {
			b = &bucket{}
			m[key] = b
		}
		b.add(r, e, p)
		if t.best[i].host > hostExact || e.host > t.best[i].host {
			t.best[i].host = e.host
		}
	}
	return nil
}

// add places r with rank k into b according to its path condition p.
func (b *bucket) add(r *route, k rank, p pathSpec) {
	e := entry{route: r, rank: k}
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
func (b *bucket) sort() {
	b.root.sort()
	sortEntries(b.regex)
	sortEntries(b.anyPath)
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
