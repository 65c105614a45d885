package router

import (
	"errors"
	"maps"
	"slices"
	"sort"

	"sluice/internal/config"
)

// Update returns the table for routes, which differ from the routes t was built from only
// in the routes whose ids are in changed (added or replaced) and removed; t is left as it
// was and stays usable by the requests that hold it.
//
// Only what the change touches is built: the changed routes are compiled, and each bucket
// they leave or join is copied along the path to their tree node (the nodes on the way, their
// child maps and the one entry list that changes); every other bucket, node, list and
// compiled route is shared with t. What is copied whole is flat: the slot-indexed route and
// position arrays and the position-to-slot one, filled by one pass over the routes that
// compares ids in order (no hashing). A route's rank does not hold its position: the last
// precedence rule reads it from the table's positions (Table.pos), so routes shifted by an
// insertion before them keep their entries.
//
// When the ids of routes are not unique, or the unchanged routes are not all in routes in
// their order before, it compiles routes whole. The result is the table Compile(routes)
// would build (the tests compare them).
func (t *Table) Update(routes []*config.Route, changed, removed []string) (*Table, error) {
	if !t.unique {
		return Compile(routes)
	}
	touched := newIDSet(changed, removed)
	nt := &Table{exact: maps.Clone(t.exact), wild: maps.Clone(t.wild), anyHost: t.anyHost, n: len(routes),
		routes: slices.Clone(t.routes), pos: slices.Clone(t.pos), order: make([]int32, len(routes)),
		unique: true, free: slices.Clone(t.free)}
	add, ok := nt.walk(t, routes, touched)
	if !ok {
		return Compile(routes)
	}
	var errs []error
	added := make(map[string]bool, len(add))
	for _, i := range add {
		if added[routes[i].ID] {
			return Compile(routes) // an id twice among the changed routes
		}
		added[routes[i].ID] = true
		slot := nt.takeSlot()
		r, err := compileRoute(i, slot, routes[i])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		nt.routes[slot], nt.pos[slot], nt.order[i] = r, int32(i), int32(slot)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	for _, i := range add {
		r := nt.routes[nt.order[i]]
		nt.place(r, func(b *bucket, e entry) *bucket { return b.with(e, r.spec, nt.pos) })
	}
	return nt, nil
}

// idSet is a set of ids, a slice when small (compared without hashing).
type idSet struct {
	few  []string
	many map[string]bool
}

func newIDSet(lists ...[]string) idSet {
	var s idSet
	for _, l := range lists {
		s.few = append(s.few, l...)
	}
	if len(s.few) > 8 {
		s.many = make(map[string]bool, len(s.few))
		for _, id := range s.few {
			s.many[id] = true
		}
	}
	return s
}

func (s idSet) has(id string) bool {
	if s.many != nil {
		return s.many[id]
	}
	return slices.Contains(s.few, id)
}

// walk goes through the routes t was built from (in their order) and the new routes side
// by side: t's touched routes are dropped from nt, each untouched one must come next among
// the new routes (it gets its new position), and the touched new routes are returned, by
// index, to be added. ok is false when the untouched routes are not all there in their
// order before.
func (nt *Table) walk(t *Table, routes []*config.Route, touched idSet) (add []int, ok bool) {
	j := 0                  // next position in t
	next := func() *route { // t's next untouched route, dropping the touched ones before it
		for ; j < len(t.order); j++ {
			if r := t.routes[t.order[j]]; !touched.has(r.id) {
				return r
			} else {
				nt.drop(r)
			}
		}
		return nil
	}
	for i, cr := range routes {
		// The config route t's next route was compiled from: untouched, whatever the ids say
		// (a config route is never modified once handed on), and no id to read.
		if j < len(t.order) {
			if r := t.routes[t.order[j]]; r.src == cr {
				nt.pos[r.slot], nt.order[i] = int32(i), int32(r.slot)
				j++
				continue
			}
		}
		id := cr.ID
		if touched.has(id) {
			add = append(add, i)
			continue
		}
		r := next()
		if r == nil || r.id != id {
			return nil, false
		}
		nt.pos[r.slot], nt.order[i] = int32(i), int32(r.slot)
		j++
	}
	return add, next() == nil
}

// takeSlot returns a free slot, growing the slot arrays when there is none.
func (t *Table) takeSlot() int {
	if n := len(t.free); n > 0 {
		s := t.free[n-1]
		t.free = t.free[:n-1]
		return s
	}
	t.routes = append(t.routes, nil)
	t.pos = append(t.pos, -1)
	return len(t.routes) - 1
}

// with returns a copy of b with e added where its path condition p puts it, in rank order.
// b is not modified.
func (b *bucket) with(e entry, p pathSpec, pos []int32) *bucket {
	return b.edit(p, func(es []entry) []entry {
		i := sort.Search(len(es), func(j int) bool { return e.rank.compare(es[j].rank, pos) > 0 })
		out := make([]entry, 0, len(es)+1)
		return append(append(append(out, es[:i]...), e), es[i:]...)
	})
}

// without returns a copy of b without r's entry, or nil when b is left empty. b is not
// modified.
func (b *bucket) without(r *route, p pathSpec) *bucket {
	nb := b.edit(p, func(es []entry) []entry {
		return slices.DeleteFunc(slices.Clone(es), func(e entry) bool { return e.route == r })
	})
	if nb.root.bare() && len(nb.regex) == 0 && len(nb.anyPath) == 0 {
		return nil
	}
	return nb
}

// edit returns a copy of b whose entry list for path condition p is f of the old one;
// f must not modify its argument. Only the nodes on the way to the list are copied.
func (b *bucket) edit(p pathSpec, f func([]entry) []entry) *bucket {
	nb := *b
	switch p.kind {
	case pathNone:
		nb.anyPath = nilIfEmpty(f(b.anyPath))
	case pathRegex:
		nb.regex = nilIfEmpty(f(b.regex))
	default:
		if n := b.root.edit(p.steps, p.list, f); n != nil {
			nb.root = *n
		} else {
			nb.root = node{}
		}
	}
	return &nb
}

// edit returns a copy of n in which the list pick chooses at the node reached by steps is
// f of the old one, or nil when the copy holds no routes. Nodes off the way are shared;
// nodes left empty are removed, so the tree is the one Compile would build.
func (n *node) edit(steps []step, pick func(*node) *[]entry, f func([]entry) []entry) *node {
	c := *n
	if len(steps) == 0 {
		l := pick(&c)
		*l = nilIfEmpty(f(*l))
	} else if s := steps[0]; s.param {
		c.param = orEmptyNode(n.param).edit(steps[1:], pick, f)
	} else {
		child := orEmptyNode(n.static.get(s.lit)).edit(steps[1:], pick, f)
		c.static = n.static.with(s.lit, child)
	}
	if c.bare() {
		return nil
	}
	return &c
}

// bare reports whether n has no entries and no children. Update never leaves a bare node
// below a root, as Compile never makes one.
func (n *node) bare() bool {
	return len(n.exact)+len(n.rest)+len(n.prefixEnd)+len(n.prefixDir) == 0 && n.static.n == 0 && n.param == nil
}

func orEmptyNode(n *node) *node {
	if n == nil {
		return &node{}
	}
	return n
}

func nilIfEmpty(es []entry) []entry {
	if len(es) == 0 {
		return nil
	}
	return es
}

// drop takes r out of t: its entries from its buckets, its slot freed.
func (t *Table) drop(r *route) {
	t.place(r, func(b *bucket, e entry) *bucket { return b.without(r, r.spec) })
	t.routes[r.slot], t.pos[r.slot] = nil, -1
	t.free = append(t.free, r.slot)
}
