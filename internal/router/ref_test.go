package router

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sluice/internal/config"
)

// refMatch is the linear reference: it tests every route the obvious way and sorts the
// matches by the precedence rules, written independently of the compiled table.
func refMatch(routes []*config.Route, in *Input) (int, Params, bool) {
	best, bestKey := -1, []int(nil)
	var bestParams Params
	for i := range routes {
		r := routes[i]
		host, ok := refHost(r.Match.Hosts, in.Host)
		if !ok || !refConds(&r.Match, in) {
			continue
		}
		kind, a, b, params, ok := refPath(&r.Match, in.Path)
		if !ok {
			continue
		}
		conds := 0
		for _, n := range []int{len(r.Match.Methods), len(r.Match.Headers), len(r.Match.Query)} {
			if n > 0 {
				conds++
			}
		}
		key := []int{r.Priority, host, kind, a, b, conds, -i}
		if best < 0 || slices.Compare(key, bestKey) > 0 {
			best, bestKey, bestParams = i, key, params
		}
	}
	return best, bestParams, best >= 0
}

// refHost returns the host score of the best of hosts matching the request host:
// 0 for no hosts, 1+len(suffix) for a wildcard, 1<<30 for an exact name.
func refHost(hosts []string, reqHost string) (int, bool) {
	if len(hosts) == 0 {
		return 0, true
	}
	h := reqHost
	if hh, _, err := net.SplitHostPort(reqHost); err == nil {
		h = hh
	} else {
		h = strings.TrimSuffix(strings.TrimPrefix(h, "["), "]")
	}
	h = refLower(h)
	score := -1
	for _, p := range hosts {
		p = refLower(strings.TrimSuffix(strings.TrimPrefix(p, "["), "]"))
		switch {
		case p == h:
			score = max(score, 1<<30)
		case strings.HasPrefix(p, "*.") && strings.HasSuffix(h, p[1:]):
			score = max(score, len(p)-1)
		}
	}
	return score, score >= 0
}

// refLower folds ASCII case only: host names are ASCII, and other bytes are kept as they are.
func refLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// refPath tests the path condition of m: kind 4 exact, 3 template, 2 prefix, 1 regex, 0 none.
func refPath(m *config.Match, path string) (kind, a, b int, params Params, ok bool) {
	switch {
	case m.Path != "" && !strings.Contains(m.Path, "{"):
		return 4, 0, 0, nil, m.Path == path
	case m.Path != "":
		params, ok := refTemplate(m.Path, path)
		n := strings.Count(m.Path, "{")
		return 3, -n, strings.Index(m.Path, "{"), params, ok
	case m.PathPrefix != "":
		p := m.PathPrefix
		ok := strings.HasPrefix(path, p) && (strings.HasSuffix(p, "/") || len(path) == len(p) || path[len(p)] == '/')
		return 2, len(p), 0, nil, ok
	case m.PathRegex != "":
		return 1, 0, 0, nil, regexp.MustCompile(m.PathRegex).MatchString(path)
	}
	return 0, 0, 0, nil, true
}

func refTemplate(tmpl, path string) (Params, bool) {
	if !strings.HasPrefix(path, "/") {
		return nil, false
	}
	ts := strings.Split(tmpl[1:], "/")
	ps := strings.Split(path[1:], "/")
	var params Params
	for i, t := range ts {
		if name, ok := strings.CutSuffix(strings.Trim(t, "{}"), "..."); ok && strings.HasPrefix(t, "{") {
			if len(ps) <= i {
				return nil, false
			}
			return append(params, Param{name, strings.Join(ps[i:], "/")}), true
		}
		switch {
		case i >= len(ps):
			return nil, false
		case strings.HasPrefix(t, "{"):
			if ps[i] == "" {
				return nil, false
			}
			params = append(params, Param{strings.Trim(t, "{}"), ps[i]})
		case t != ps[i]:
			return nil, false
		}
	}
	return params, len(ps) == len(ts)
}

func refConds(m *config.Match, in *Input) bool {
	if len(m.Methods) > 0 && !slices.Contains(m.Methods, in.Method) {
		return false
	}
	for _, vm := range m.Headers {
		v, ok := "", false
		if in.Header != nil {
			v, ok = in.Header(vm.Name)
		}
		if !refValue(vm, v, ok) {
			return false
		}
	}
	q, _ := url.ParseQuery(in.Query)
	for _, vm := range m.Query {
		v, ok := q.Get(vm.Name), q.Has(vm.Name)
		if !refValue(vm, v, ok) {
			return false
		}
	}
	return true
}

func refValue(vm config.ValueMatch, v string, ok bool) bool {
	switch {
	case vm.Exact != nil:
		return ok && v == *vm.Exact
	case vm.Regex != "":
		return ok && regexp.MustCompile(vm.Regex).MatchString(v)
	}
	return ok == *vm.Present
}

// gen makes random route sets and requests from small alphabets so that they collide often.
type gen struct{ r *rand.Rand }

func (g gen) pick(xs ...string) string { return xs[g.r.IntN(len(xs))] }

func (g gen) segs(alphabet []string, maxN int) string {
	n := g.r.IntN(maxN + 1)
	var sb strings.Builder
	for range n {
		sb.WriteString("/" + alphabet[g.r.IntN(len(alphabet))])
	}
	if sb.Len() == 0 || g.r.IntN(4) == 0 {
		sb.WriteString("/")
	}
	return sb.String()
}

func (g gen) route(i int) *config.Route {
	r := &config.Route{ID: fmt.Sprintf("r%d", i)}
	if g.r.IntN(5) == 0 {
		r.Priority = g.r.IntN(3) - 1
	}
	for range g.r.IntN(3) {
		r.Match.Hosts = append(r.Match.Hosts, g.pick("a.com", "B.a.com", "*.a.com", "*.com", "x.b.a.com", "*.b.a.com", "[::1]", "c.com"))
	}
	switch g.r.IntN(6) {
	case 1:
		r.Match.Path = g.segs([]string{"a", "b", "c", ""}, 3)
	case 2:
		r.Match.Path = g.template()
	case 3:
		r.Match.PathPrefix = g.segs([]string{"a", "b", "c", "", "{x}"}, 3)
	case 4:
		r.Match.PathRegex = g.pick("^/a", "b$", "/c/", "^/$", "a/b", "^[^/]")
	}
	for range g.r.IntN(3) {
		r.Match.Methods = append(r.Match.Methods, g.pick("GET", "POST"))
	}
	if g.r.IntN(3) == 0 {
		r.Match.Headers = append(r.Match.Headers, g.valueMatch("X-A"))
	}
	if g.r.IntN(4) == 0 {
		r.Match.Query = append(r.Match.Query, g.valueMatch("q"))
	}
	return r
}

func (g gen) template() string {
	n := 1 + g.r.IntN(4)
	parts := make([]string, n)
	for i := range parts {
		parts[i] = g.pick("a", "b", "", fmt.Sprintf("{p%d}", i), fmt.Sprintf("{p%d}", i))
	}
	if g.r.IntN(3) == 0 {
		parts[n-1] = "{rest...}"
	}
	return "/" + strings.Join(parts, "/")
}

func (g gen) valueMatch(name string) config.ValueMatch {
	vm := config.ValueMatch{Name: name}
	switch g.r.IntN(4) {
	case 0:
		vm.Exact = ptr("1")
	case 1:
		vm.Regex = "^[12]$"
	default:
		vm.Present = ptr(g.r.IntN(2) == 0)
	}
	return vm
}

func (g gen) input() Input {
	in := Input{
		Method: g.pick("GET", "POST"),
		Host:   g.pick("a.com", "A.COM:80", "b.a.com", "x.b.a.com:8080", "y.x.b.a.com", "c.com", "com", "[::1]:80", "[::1]", ""),
		Path:   g.segs([]string{"a", "b", "c", "", "x", "{x}"}, 5),
		Query:  g.pick("", "q=1", "q=2", "q", "q=2&q=1", "q=%31", "q=1;x"),
	}
	if g.r.IntN(8) == 0 {
		in.Path = g.pick("", "*", "a/b")
	}
	if v := g.pick("", "1", "2", "-"); v != "-" {
		in.Header = headers(map[string]string{"x-a": v})
	}
	return in
}

func TestMatchAgainstReference(t *testing.T) {
	const sets, requests = 400, 200
	g := gen{rand.New(rand.NewPCG(1, 2))}
	for s := range sets {
		routes := make([]*config.Route, 1+g.r.IntN(40))
		for i := range routes {
			routes[i] = g.route(i)
		}
		tab, err := Compile(routes)
		if err != nil {
			t.Fatalf("set %d: Compile: %v", s, err)
		}
		for range requests {
			in := g.input()
			checkAgainstReference(t, tab, routes, &in)
		}
		if t.Failed() {
			t.Fatalf("set %d: table:\n%s", s, tab.Dump())
		}
	}
}

func checkAgainstReference(t *testing.T, tab *Table, routes []*config.Route, in *Input) {
	t.Helper()
	gi, gp, gok := tab.Match(in)
	wi, wp, wok := refMatch(routes, in)
	if gi != wi || gok != wok || !slices.Equal(gp, wp) {
		t.Errorf("Match(%+v) = %d %v %v, reference = %d %v %v", *in, gi, gp, gok, wi, wp, wok)
		if gok {
			t.Logf("got   route %+v", routes[gi].Match)
		}
		if wok {
			t.Logf("want  route %+v", routes[wi].Match)
		}
	}
}
