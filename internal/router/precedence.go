package router

import (
	"fmt"
	"slices"
)

// Precedence is one route's place in [Table.Precedence].
type Precedence struct {
	Index int    // position in the routes given to Compile
	ID    string // route id
	// Rank says why the route sits where it does, in the order the rules compare:
	// "priority=0 host=exact path=prefix(5) conds=1".
	Rank string
}

// Precedence returns every route best first, as the matcher would prefer them when several
// match one request. A route with several hosts is ranked by its most specific host (in a
// request for another of its hosts it ranks as that host says). For the admin API and the
// dashboard; not used on the request path.
func (t *Table) Precedence() []Precedence {
	order := make([]*route, 0, t.n)
	for _, r := range t.routes {
		if r != nil {
			order = append(order, r)
		}
	}
	slices.SortFunc(order, func(a, b *route) int { return b.best.compare(a.best, t.pos) })
	out := make([]Precedence, len(order))
	for n, r := range order {
		k := r.best
		out[n] = Precedence{Index: int(t.pos[r.slot]), ID: r.id, Rank: fmt.Sprintf("priority=%d host=%s path=%s conds=%d",
			k.priority, hostRankString(k.host), pathRankString(k), k.conds)}
	}
	return out
}
