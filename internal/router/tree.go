package router

import (
	"slices"
	"strings"
)

// bucket holds the routes of one host key (an exact host, a wildcard suffix, or any host).
type bucket struct {
	root    node    // exact, template and prefix routes, by path segment
	regex   []entry // path_regex routes: inherently linear, checked only if they could win
	anyPath []entry // routes without a path condition
}

// node is a position in the segment tree: the path consumed so far is the sequence of
// segments on the way from the root. Every node is reachable by exactly one sequence of
// static and parameter steps, so a walk visits each node at most once.
type node struct {
	static kids  // child per literal next segment (kids.go)
	param  *node // child for a "{name}" next segment (any non-empty segment)

	exact     []entry // exact paths and templates ending here; need the path to end here
	rest      []entry // templates whose "{name...}" starts at the next segment
	prefixEnd []entry // prefixes like "/api": match whether the path ends here or goes on
	prefixDir []entry // prefixes like "/api/": match only if the path goes on with "/"
}

// step is one segment of a path pattern on the way to its node.
type step struct {
	lit   string
	param bool
}

// insert attaches e under the node reached by steps, to the list chosen by pick.
func (n *node) insert(steps []step, e entry, pick func(*node) *[]entry) {
	for _, s := range steps {
		n = n.child(s)
	}
	l := pick(n)
	*l = append(*l, e)
}

// child returns the child of n for s, creating it.
func (n *node) child(s step) *node {
	if s.param {
		if n.param == nil {
			n.param = &node{}
		}
		return n.param
	}
	c := n.static.get(s.lit)
	if c == nil {
		c = &node{}
		n.static.put(s.lit, c)
	}
	return c
}

// sort orders every entry list of the subtree best first.
func (n *node) sort(pos []int32) {
	for _, l := range []*[]entry{&n.exact, &n.rest, &n.prefixEnd, &n.prefixDir} {
		sortEntries(*l, pos)
	}
	for _, c := range n.static.all() {
		c.sort(pos)
	}
	if n.param != nil {
		n.param.sort(pos)
	}
}

// sortEntries orders es best first.
func sortEntries(es []entry, pos []int32) {
	slices.SortFunc(es, func(a, b entry) int { return b.rank.compare(a.rank, pos) })
}

// walk considers the routes at n, where path[:pos] has been consumed and path[pos:] is
// either empty or starts with '/', then descends into the static and parameter children
// that the next segment selects. Both children are tried because a less specific branch
// may hold the winner (a higher priority, or the only route whose methods fit).
func (m *matcher) walk(n *node, path string, pos int) {
	m.consider(n.prefixEnd)
	if pos == len(path) {
		m.consider(n.exact)
		return
	}
	m.consider(n.prefixDir)
	m.consider(n.rest)
	start := pos + 1
	end := strings.IndexByte(path[start:], '/')
	if end < 0 {
		end = len(path)
	} else {
		end += start
	}
	seg := path[start:end]
	if c := n.static.get(seg); c != nil {
		m.walk(c, path, end)
	}
	if n.param != nil && seg != "" {
		m.walk(n.param, path, end)
	}
}

// extract returns the parameters of t captured from path, which t is known to match.
func (t *template) extract(path string) Params {
	ps := make(Params, len(t.params))
	k, start := 0, 1 // segment index and its start in path
	for i, p := range t.params {
		for ; k < p.seg; k++ {
			j := strings.IndexByte(path[start:], '/')
			if j < 0 {
				return ps[:i] // unreachable for a matching path
			}
			start += j + 1
		}
		end := len(path)
		if !p.rest {
			if j := strings.IndexByte(path[start:], '/'); j >= 0 {
				end = start + j
			}
		}
		ps[i] = Param{Name: p.name, Value: path[start:end]}
	}
	return ps
}
