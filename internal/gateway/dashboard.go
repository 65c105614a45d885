package gateway

import (
	"sync"

	"sluice/internal/admin"
	"sluice/internal/metrics"
)

// reloadLogSize is how many config reloads the dashboard lists.
const reloadLogSize = 20

// reloadLog keeps the last config reloads, applied and rejected, for the dashboard. Apply
// and the config watcher add to it; nothing on the request path touches it.
type reloadLog struct {
	mu   sync.Mutex
	last []admin.Reload // oldest first
}

func (l *reloadLog) add(r admin.Reload) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.last) == reloadLogSize {
		l.last = append(l.last[:0], l.last[1:]...)
	}
	l.last = append(l.last, r)
}

func (l *reloadLog) list() []admin.Reload {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]admin.Reload(nil), l.last...)
}

// Totals implements admin.Dashboard.
func (v adminView) Totals() metrics.Totals { return v.g.obs.m.Totals() }

// Reloads implements admin.Dashboard.
func (v adminView) Reloads() []admin.Reload { return v.g.obs.reloads.list() }

// RouteOrder implements admin.Dashboard: the serving routes in precedence order.
func (v adminView) RouteOrder() []admin.RouteRank {
	gen := v.g.cur.Load()
	if gen == nil {
		return nil
	}
	ps := gen.Table.Precedence()
	out := make([]admin.RouteRank, len(ps))
	for i, p := range ps {
		out[i] = admin.RouteRank{Index: p.Index, ID: p.ID, Rank: p.Rank}
		if p.Index < len(gen.Routes) && gen.Routes[p.Index].Upstream != nil {
			out[i].Upstream = gen.Routes[p.Index].Upstream.ID
		}
	}
	return out
}

var _ admin.Dashboard = adminView{}
