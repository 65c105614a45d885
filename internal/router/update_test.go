package router

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"reflect"
	"slices"
	"testing"

	"sluice/internal/config"
)

// TestUpdateMatchesCompile runs random sequences of changes (routes added at any position,
// replaced in place or moved, removed; one to four per change) through Update and checks
// after each that the table is the one Compile builds from the same routes: the same dump
// (buckets, tree, entry lists in rank order, positions) and the same winner and parameters
// for random requests. It also checks that the table before the change still answers for
// the routes before (Update must not modify a table requests may hold).
func TestUpdateMatchesCompile(t *testing.T) {
	const sequences, steps, requests = 60, 40, 40
	g := gen{rand.New(rand.NewPCG(5, 6))}
	next := 0
	newRoute := func() *config.Route {
		r := g.route(next)
		r.ID = fmt.Sprintf("r%d", next)
		next++
		return r
	}
	for s := range sequences {
		routes := make([]*config.Route, g.r.IntN(30))
		for i := range routes {
			routes[i] = newRoute()
		}
		tab, err := Compile(routes)
		if err != nil {
			t.Fatal(err)
		}
		for step := range steps {
			prev, prevTab := slices.Clone(routes), tab
			var changed, removed []string
			for range 1 + g.r.IntN(4) {
				switch op := g.r.IntN(4); {
				case op == 0 || len(routes) == 0: // add
					r := newRoute()
					routes = slices.Insert(routes, g.r.IntN(len(routes)+1), r)
					changed = append(changed, r.ID)
				case op == 1: // replace in place
					i := g.r.IntN(len(routes))
					r := newRoute()
					r.ID = routes[i].ID
					routes[i] = r
					changed = append(changed, r.ID)
				case op == 2: // replace and move
					i := g.r.IntN(len(routes))
					r := newRoute()
					r.ID = routes[i].ID
					routes = slices.Delete(routes, i, i+1)
					routes = slices.Insert(routes, g.r.IntN(len(routes)+1), r)
					changed = append(changed, r.ID)
				default: // remove
					i := g.r.IntN(len(routes))
					removed = append(removed, routes[i].ID)
					routes = slices.Delete(routes, i, i+1)
				}
			}
			tab, err = tab.Update(routes, changed, removed)
			if err != nil {
				t.Fatalf("sequence %d step %d: Update: %v", s, step, err)
			}
			whole, err := Compile(routes)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := tab.Dump(), whole.Dump(); got != want {
				t.Fatalf("sequence %d step %d (changed %v, removed %v): Update's table\n%s\nCompile's\n%s", s, step, changed, removed, got, want)
			}
			for _, r := range prevTab.routes {
				if r != nil && !slices.Contains(changed, r.id) && !slices.Contains(removed, r.id) && tab.routes[r.slot] != r {
					t.Fatalf("sequence %d step %d: untouched route %s was compiled again", s, step, r.id)
				}
			}
			if tab.Len() != len(routes) {
				t.Fatalf("Len %d, want %d", tab.Len(), len(routes))
			}
			for range requests {
				in := g.input()
				sameMatch(t, tab, whole, &in)
				checkAgainstReference(t, prevTab, prev, &in)
			}
			if got, want := fmt.Sprint(tab.Precedence()), fmt.Sprint(whole.Precedence()); got != want {
				t.Fatalf("Precedence after Update %s, Compile's %s", got, want)
			}
			if t.Failed() {
				t.Fatalf("sequence %d step %d (changed %v, removed %v)", s, step, changed, removed)
			}
		}
	}
}

func sameMatch(t *testing.T, got, want *Table, in *Input) {
	t.Helper()
	gi, gp, gok := got.Match(in)
	wi, wp, wok := want.Match(in)
	if gi != wi || gok != wok || !slices.Equal(gp, wp) {
		t.Errorf("Match(%+v) = %d %v %v after Update, %d %v %v after Compile", *in, gi, gp, gok, wi, wp, wok)
	}
}

// TestUpdateShares: a change of one route builds only its way through the tree: a route in
// another host's bucket, and a sibling path's node in the same bucket, are the same objects
// in the table after as before.
func TestUpdateShares(t *testing.T) {
	routes := []*config.Route{
		rt("a", config.Match{Hosts: []string{"a.com"}, PathPrefix: "/a"}),
		rt("b", config.Match{Hosts: []string{"b.com"}, PathPrefix: "/b"}),
		rt("c", config.Match{Hosts: []string{"b.com"}, Path: "/c/{id}"}),
	}
	tab, err := Compile(routes)
	if err != nil {
		t.Fatal(err)
	}
	routes[1] = rt("b", config.Match{Hosts: []string{"b.com"}, PathPrefix: "/bb"})
	nt, err := tab.Update(routes, []string{"b"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if nt.exact["a.com"] != tab.exact["a.com"] {
		t.Error("the bucket of an untouched host was copied")
	}
	if nt.exact["b.com"] == tab.exact["b.com"] || nt.exact["b.com"].root.static.get("c") != tab.exact["b.com"].root.static.get("c") {
		t.Error("the touched bucket was not copied, or its untouched path was")
	}
	if nt.routes[0] != tab.routes[0] || nt.routes[2] != tab.routes[2] || nt.routes[1] == tab.routes[1] {
		t.Error("untouched routes were compiled again, or the changed one was not")
	}
	if nt.exact["b.com"].root.static.get("b") != nil {
		t.Error(`the node of the replaced prefix "/b" was left in the tree`)
	}
}

// TestUpdateError: a changed route that does not compile is an error naming its index, and
// the table before is untouched.
func TestUpdateError(t *testing.T) {
	routes := []*config.Route{rt("a", config.Match{PathPrefix: "/a"}), rt("b", config.Match{PathPrefix: "/b"})}
	tab, err := Compile(routes)
	if err != nil {
		t.Fatal(err)
	}
	before := tab.Dump()
	bad := slices.Insert(slices.Clone(routes), 1, rt("x", config.Match{PathRegex: "a("}))
	_, err = tab.Update(bad, []string{"x"}, nil)
	var re *RouteError
	if !errors.As(err, &re) || re.Index != 1 || re.ID != "x" || re.Field != "match.path_regex" {
		t.Fatalf("Update error %v, want a RouteError for routes[1] (id x) match.path_regex", err)
	}
	if tab.Dump() != before {
		t.Error("a failed Update modified the table")
	}
}

// TestUpdateFallsBack: when the untouched routes changed order, an untouched route is
// missing, or ids repeat, Update compiles whole, and the table is still Compile's.
func TestUpdateFallsBack(t *testing.T) {
	a, b, c := rt("a", config.Match{PathPrefix: "/x"}), rt("b", config.Match{PathPrefix: "/x"}), rt("c", config.Match{PathPrefix: "/c"})
	tab, err := Compile([]*config.Route{a, b, c})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name             string
		routes           []*config.Route
		changed, removed []string
	}{
		{"swapped", []*config.Route{b, a, c}, nil, nil},
		{"missing", []*config.Route{a, c}, nil, nil},
		{"id twice", []*config.Route{a, b, c, c}, []string{"c"}, nil},
		{"unknown id", []*config.Route{a, b, c, rt("d", config.Match{})}, nil, nil},
	} {
		nt, err := tab.Update(tc.routes, tc.changed, tc.removed)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		whole, _ := Compile(tc.routes)
		if nt.Dump() != whole.Dump() {
			t.Errorf("%s: Update's table\n%s\nCompile's\n%s", tc.name, nt.Dump(), whole.Dump())
		}
		in := Input{Method: "GET", Path: "/x/1"}
		sameMatch(t, nt, whole, &in)
	}
}

// TestUpdateFanOut: a node with many children (sharded, kids.go) is updated like any other:
// random changes among 300 routes under distinct first segments give Compile's table and
// matches, and a change copies the shards it leaves or joins (at most two), sharing the others.
func TestUpdateFanOut(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	mk := func(i int) *config.Route {
		seg := fmt.Sprintf("/t%d", r.IntN(400))
		switch i % 3 {
		case 0:
			return rt(fmt.Sprintf("f%d", i), config.Match{PathPrefix: seg})
		case 1:
			return rt(fmt.Sprintf("f%d", i), config.Match{Path: seg + "/{id}"})
		}
		return rt(fmt.Sprintf("f%d", i), config.Match{Path: seg + "/x", Methods: []string{"GET"}})
	}
	var routes []*config.Route
	for i := range 300 {
		routes = append(routes, mk(i))
	}
	tab, err := Compile(routes)
	if err != nil {
		t.Fatal(err)
	}
	if tab.anyHost.root.static.shards == nil {
		t.Fatal("the root of 300 first segments is not sharded")
	}
	next := 300
	for step := range 200 {
		var changed, removed []string
		switch i := r.IntN(len(routes)); r.IntN(3) {
		case 0:
			nr := mk(next)
			next++
			routes = slices.Insert(routes, i, nr)
			changed = append(changed, nr.ID)
		case 1:
			nr := mk(i)
			nr.ID = routes[i].ID
			routes[i] = nr
			changed = append(changed, nr.ID)
		default:
			removed = append(removed, routes[i].ID)
			routes = slices.Delete(routes, i, i+1)
		}
		prev, prevDump := tab, tab.Dump()
		if tab, err = tab.Update(routes, changed, removed); err != nil {
			t.Fatal(err)
		}
		if prev.Dump() != prevDump {
			t.Fatalf("step %d: Update modified the table before", step)
		}
		whole, _ := Compile(routes)
		if got, want := tab.Dump(), whole.Dump(); got != want {
			t.Fatalf("step %d: Update's table\n%s\nCompile's\n%s", step, got, want)
		}
		for range 20 {
			in := Input{Method: "GET", Path: fmt.Sprintf("/t%d%s", r.IntN(400), []string{"", "/x", "/7", "/x/y"}[r.IntN(4)])}
			sameMatch(t, tab, whole, &in)
		}
		if ps, ns := prev.anyHost.root.static.shards, tab.anyHost.root.static.shards; ps != nil && ns != nil {
			copied := 0
			for i := range ps {
				if ps[i] != nil && reflect.ValueOf(ps[i]).Pointer() != reflect.ValueOf(ns[i]).Pointer() {
					copied++
				}
			}
			if copied > 2 { // a replace leaves one shard and joins another
				t.Fatalf("step %d: a one-route change copied %d shards of the root's children", step, copied)
			}
		}
	}
}
