package gateway

import (
	"fmt"
	"time"

	"sluice/internal/config"
	"sluice/internal/h1"
	"sluice/internal/metrics"
	"sluice/internal/proxy"
	"sluice/internal/split"
)

// traffic is a generation's traffic splits and mirrors (docs/traffic.md): splits by route
// index (nil: the route has none; a nil or short list: no route after has one), and every
// mirror with its route.
type traffic struct {
	splits  []*split.Split
	mirrors []routeMirror
}

type routeMirror struct {
	route string
	m     *proxy.Mirror
}

// buildTraffic builds the splits and mirrors of cfg's routes, after g.Routes. A split's
// shares are whole routes, one per upstream, built like any route for that upstream (its
// timeouts and retry policy); the route's own is the share of its primary upstream. A
// mirror's copies go through a route of their own towards the mirror's upstream, with
// retries off.
func (g *Generation) buildTraffic(cfg *config.Config, ucfg map[string]config.Upstream) error {
	for i := range cfg.Routes {
		rc := cfg.Routes[i]
		if rc.Split == nil && rc.Mirror == nil {
			continue
		}
		routes := []*proxy.Route{g.Routes[i]}
		if rc.Split != nil {
			byID := map[string]*proxy.Route{rc.Upstream: g.Routes[i]}
			for _, sh := range rc.Split.Upstreams {
				if byID[sh.Upstream] != nil {
					continue
				}
				rt, err := proxy.NewRoute(*rc, ucfg[sh.Upstream], g.Upstreams[sh.Upstream])
				if err != nil {
					return err
				}
				byID[sh.Upstream] = rt
			}
			sp, err := split.New(rc.Split, byID)
			if err != nil {
				return fmt.Errorf("route %q: %w", rc.ID, err)
			}
			if g.traffic.splits == nil { // made at the first split: most configs have none
				g.traffic.splits = make([]*split.Split, len(cfg.Routes))
			}
			g.traffic.splits[i] = sp
			routes = sp.Routes()
		}
		if mc := rc.Mirror; mc != nil {
			mrc := *rc // a copy: its retry is changed
			one := 1
			mrc.Retry.Attempts = &one // a copy is never retried (but see proxy.Mirror)
			mrt, err := proxy.NewRoute(mrc, ucfg[mc.Upstream], g.Upstreams[mc.Upstream])
			if err != nil {
				return err
			}
			m := &proxy.Mirror{Route: mrt, Percent: *mc.Percent, MaxBody: *mc.MaxBodyBytes,
				MaxConcurrent: int64(*mc.MaxConcurrent)}
			g.Routes[i].SetMirror(m)
			for _, rt := range routes {
				rt.SetMirror(m)
			}
			g.traffic.mirrors = append(g.traffic.mirrors, routeMirror{route: rc.ID, m: m})
		}
	}
	return nil
}

// startMirrors starts the generation's mirrors on p, counting into m.
func (g *Generation) startMirrors(p *proxy.Proxy, m *metrics.Metrics) {
	for _, rm := range g.traffic.mirrors {
		rm.m.Count = m.Mirrored(rm.route, rm.m.Route.Upstream.ID)
		rm.m.Start(p)
	}
}

// closeMirrors stops the copies in flight and waits for them.
func (g *Generation) closeMirrors() {
	for _, rm := range g.traffic.mirrors {
		rm.m.Close()
	}
}

// route returns the route that serves a request matched to route idx: the route itself,
// or the share its split picks.
func (g *Generation) route(idx int, h *h1.Header) *proxy.Route {
	if idx < len(g.traffic.splits) {
		if sp := g.traffic.splits[idx]; sp != nil {
			return sp.Pick(h, time.Now())
		}
	}
	return g.Routes[idx]
}

// addShares resolves the series of every split share of rs's generation.
func (rs *routeSeries) addShares(m *metrics.Metrics) {
	for _, sp := range rs.gen.traffic.splits {
		if sp == nil {
			continue
		}
		if rs.shares == nil {
			rs.shares = map[*proxy.Route]*metrics.Route{}
		}
		for _, rt := range sp.Routes() {
			rs.shares[rt] = m.Route(rt.ID, rt.Upstream.ID)
		}
	}
}

// share is the series of rt, a split share of gen, when rs has it (nil otherwise).
func (rs *routeSeries) share(gen *Generation, rt *proxy.Route) *metrics.Route {
	if rs == nil || rs.gen != gen || rs.shares == nil {
		return nil
	}
	return rs.shares[rt]
}
