package gateway

import (
	"sluice/internal/config"
	"sluice/internal/proxy"
	"sluice/internal/upstream"
)

// ApplyChange applies cfg, which differs from from (the config serving now) only by ch, as
// cluster mode's watch delivers it: what ch does not touch is taken from the serving
// generation as it is instead of being built again. An upstream not in ch keeps its
// *upstream.Upstream (targets, balancer, health, slow start, passive state; its pools were
// kept by Apply too), and a route not in ch whose upstream was kept keeps its *proxy.Route
// (and the tunnels running on it). Upstreams with named targets (DNS discovery) are built
// again as Apply builds them. The route table and plugin chains are compiled as by Apply.
// When from is not the serving config (another Apply came between), it is Apply.
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
	old       *Generation
	changed   map[string]bool // upstream ids added, replaced or removed
	routes    map[string]bool // route ids added, replaced or removed
	oldRoutes map[string]*proxy.Route
	held      map[string][]poolID // the old generation's static pool references, by upstream
}

func newKeeper(old *Generation, ch *config.Change) *keeper {
	if old == nil || ch == nil {
		return nil
	}
	k := &keeper{old: old, changed: map[string]bool{}, routes: map[string]bool{},
		oldRoutes: make(map[string]*proxy.Route, len(old.Routes)), held: map[string][]poolID{}}
	for _, u := range ch.Upstreams {
		k.changed[u.ID] = true
	}
	for _, id := range ch.RemovedUpstreams {
		k.changed[id] = true
	}
	for _, r := range ch.Routes {
		k.routes[r.ID] = true
	}
	for _, id := range ch.RemovedRoutes {
		k.routes[id] = true
	}
	for _, rt := range old.Routes {
		k.oldRoutes[rt.ID] = rt
	}
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

// route returns the old generation's route for rc when the change did not touch it and its
// upstream was kept; nil when it must be built.
func (k *keeper) route(g *Generation, rc config.Route) *proxy.Route {
	if k == nil || k.routes[rc.ID] || rc.Split != nil || rc.Mirror != nil {
		return nil // split and mirror routes are built anew: buildTraffic sets their shares and mirror
	}
	if rt := k.oldRoutes[rc.ID]; rt != nil && rt.Upstream == g.Upstreams[rc.Upstream] {
		return rt
	}
	return nil
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
