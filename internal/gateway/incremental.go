package gateway

import (
	"log/slog"
	"slices"

	"sluice/internal/config"
	"sluice/internal/plugin"
	"sluice/internal/proxy"
	"sluice/internal/router"
	"sluice/internal/upstream"
)

// ApplyChange applies cfg, which differs from from (the config serving now) only by ch, as
// cluster mode's watch delivers it: what ch does not touch is taken from the serving
// generation as it is instead of being built again. An upstream not in ch keeps its
// *upstream.Upstream (targets, balancer, health, slow start, passive state; its pools were
// kept by Apply too), and a route not in ch whose upstream was kept keeps its *proxy.Route
// (and the tunnels running on it). Upstreams with named targets (DNS discovery) are built
// again as Apply builds them. The route table is updated, not compiled (router.Table.Update:
// only the buckets and tree paths of the changed routes are built), and a kept route keeps
// its plugin chain, the global plugins and those of kept upstreams their instances
// (plugin.Update). When from is not the serving config (another Apply came between), it is
// Apply.
func (g *Gateway) ApplyChange(from, cfg *config.Config, ch config.Change) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	var chp *config.Change
	if cur := g.cur.Load(); cur != nil && cur.Config == from {
		chp = &ch
	}
	err := g.apply(cfg, chp)
	g.afterApply(cfg, err) // metrics and the admin listener (observe.go)
	return err
}

// keeper takes the upstreams and routes a change did not touch from the generation before.
// A nil keeper (a whole config) keeps nothing.
type keeper struct {
	old      *Generation
	ch       *config.Change
	changed  map[string]bool     // upstream ids added, replaced or removed
	routes   []string            // route ids added, replaced or removed (few: compared, not hashed)
	lastUp   string              // the upstream id route last looked up, and its upstream in g
	lastU    *upstream.Upstream  //
	oldIndex map[string]int      // the old generation's routes: index by id, made when first needed
	cursor   int                 // where oldIndexOf looks first (routes keep their order)
	held     map[string][]poolID // the old generation's static pool references, by upstream
}

func newKeeper(old *Generation, ch *config.Change) *keeper {
	if old == nil || ch == nil {
		return nil
	}
	k := &keeper{old: old, ch: ch, changed: map[string]bool{}, held: map[string][]poolID{}}
	for _, u := range ch.Upstreams {
		k.changed[u.ID] = true
	}
	for _, id := range ch.RemovedUpstreams {
		k.changed[id] = true
	}
	for _, r := range ch.Routes {
		k.routes = append(k.routes, r.ID)
	}
	k.routes = append(k.routes, ch.RemovedRoutes...)
	for _, id := range old.held {
		k.held[id.upstream] = append(k.held[id.upstream], id)
	}
	return k
}

// upstream returns the old generation's upstream for uc when the change did not touch it,
// after taking g's references on its pools; nil when it must be built.
func (k *keeper) upstream(g *Generation, uc config.Upstream) *upstream.Upstream {
	if k == nil || k.changed[uc.ID] || k.old.members[uc.ID] != nil {
		return nil
	}
	u := k.old.Upstreams[uc.ID]
	if u == nil {
		return nil
	}
	for _, id := range k.held[uc.ID] {
		g.pools.hold(id)
		g.held = append(g.held, id)
	}
	return u
}

// route returns the old generation's route for rc, with its index there, when the change
// did not touch it and its upstream was kept; nil when it must be built.
func (k *keeper) route(g *Generation, rc *config.Route) (*proxy.Route, int) {
	if k == nil || rc.Split != nil || rc.Mirror != nil {
		return nil, -1 // split and mirror routes are built anew: buildTraffic sets their shares and mirror
	}
	if rc.Upstream != k.lastUp || k.lastU == nil {
		k.lastUp, k.lastU = rc.Upstream, g.Upstreams[rc.Upstream] // routes in a row often share one
	}
	// The old generation's next route built from this very config route: untouched (a
	// config route is never modified once handed on), found without comparing ids.
	if i := k.cursor; i < len(k.old.Routes) && k.old.Config.Routes[i] == rc {
		if k.cursor++; k.old.Routes[i].Upstream == k.lastU {
			return k.old.Routes[i], i
		}
		return nil, -1
	}
	if slices.Contains(k.routes, rc.ID) {
		return nil, -1
	}
	if i := k.oldIndexOf(rc.ID); i >= 0 && k.old.Routes[i].Upstream == k.lastU {
		return k.old.Routes[i], i
	}
	return nil, -1
}

// oldIndexOf returns the index of route id in the old generation, -1 if it has none. Asked
// for the routes in order, it costs one comparison per old route over all the calls, since
// a change keeps the order of the routes it does not touch; a map is the fallback.
func (k *keeper) oldIndexOf(id string) int {
	rs := k.old.Routes
	for i := k.cursor; i < len(rs) && i < k.cursor+4; i++ {
		if rs[i].ID == id {
			k.cursor = i + 1
			return i
		}
	}
	if k.oldIndex == nil {
		k.oldIndex = make(map[string]int, len(rs))
		for i, rt := range rs {
			k.oldIndex[rt.ID] = i
		}
	}
	if i, ok := k.oldIndex[id]; ok {
		k.cursor = i + 1
		return i
	}
	return -1
}

// table returns the route table of cfg: the old one updated by the change (only what the
// change touches is built), or compiled whole without a keeper.
func (k *keeper) table(cfg *config.Config) (*router.Table, error) {
	if k == nil {
		return router.Compile(cfg.Routes)
	}
	changed := make([]string, len(k.ch.Routes))
	for i, r := range k.ch.Routes {
		changed[i] = r.ID
	}
	return k.old.Table.Update(cfg.Routes, changed, k.ch.RemovedRoutes)
}

// plugins builds the plugin set of g, keeping the chains of the routes g took from the old
// generation as they were (and the instances of untouched places: plugin.Update).
func (k *keeper) plugins(g *Generation, log *slog.Logger) (*plugin.Set, error) {
	if k == nil {
		return plugin.New(g.Config, log)
	}
	return plugin.Update(k.old.Plugins, g.Config, log, func(id string) bool { return k.changed[id] }, func(i int) int {
		if i < len(g.kept) {
			return int(g.kept[i])
		}
		return -1
	})
}

// hold takes one more reference on a pool that exists (held by the generation a kept
// upstream comes from).
func (r *poolRefs) hold(id poolID) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ref := r.m[id]; ref != nil {
		ref.n++
	}
}
