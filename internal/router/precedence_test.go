package router

import (
	"testing"

	"sluice/internal/config"
)

// TestPrecedence: the table lists routes best first under the matcher's rules, and the
// order agrees with Match where two routes match one request.
func TestPrecedence(t *testing.T) {
	routes := []*config.Route{
		{ID: "root", Match: config.Match{PathPrefix: "/"}},
		{ID: "api", Match: config.Match{PathPrefix: "/api/"}},
		{ID: "exact", Match: config.Match{Path: "/api/users"}},
		{ID: "host", Match: config.Match{Hosts: []string{"*.example.com", "api.example.com"}, PathPrefix: "/"}},
		{ID: "urgent", Priority: 5, Match: config.Match{PathPrefix: "/"}},
	}
	tb, err := Compile(routes)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range tb.Precedence() {
		got = append(got, p.ID)
		if routes[p.Index].ID != p.ID {
			t.Errorf("entry %q has index %d, which is route %q", p.ID, p.Index, routes[p.Index].ID)
		}
	}
	want := []string{"urgent", "host", "exact", "api", "root"}
	if len(got) != len(want) {
		t.Fatalf("precedence %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("precedence %v, want %v", got, want)
		}
	}
	if r := tb.Precedence()[1].Rank; r != "priority=0 host=exact path=prefix(1) conds=0" {
		t.Errorf("rank of host = %q", r)
	}
	// Match agrees: /api/users without a host goes to "urgent" (priority), and the order
	// of exact over api is what a lower priority request would see.
	if i, _, ok := tb.Match(&Input{Method: "GET", Path: "/api/users", Host: "x.org"}); !ok || routes[i].ID != "urgent" {
		t.Errorf("Match = %d, %t; want urgent", i, ok)
	}
}
