package gateway

import (
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/proxy"
	"sluice/internal/router"
	"sluice/internal/upstream"
	"sluice/internal/upstream/balancer"
)

// Generation is everything built from one config version. Requests load the current generation
// once, on arrival, and finish on it even if a reload swaps in a new one meanwhile.
type Generation struct {
	Config    *config.Config
	Table     *router.Table
	Routes    []*proxy.Route
	Upstreams map[string]*upstream.Upstream
	Created   time.Time

	inflight atomic.Int64
	// pools are the pools this generation uses, by key; a retired generation closes those the
	// next generation no longer uses.
	pools map[string]*connpool.Pool
}

// build compiles cfg into a Generation, reusing pools from prev whose target and settings are
// unchanged so that warm connections and learned idle timeouts survive a reload.
func build(cfg *config.Config, prev map[string]*connpool.Pool, log *slog.Logger) (*Generation, error) {
	table, err := router.Compile(cfg.Routes)
	if err != nil {
		return nil, fmt.Errorf("compile routes: %w", err)
	}
	g := &Generation{
		Config: cfg, Table: table, Created: time.Now(),
		Upstreams: make(map[string]*upstream.Upstream, len(cfg.Upstreams)),
		pools:     map[string]*connpool.Pool{},
	}
	ucfg := make(map[string]config.Upstream, len(cfg.Upstreams))
	for _, uc := range cfg.Upstreams {
		u := &upstream.Upstream{ID: uc.ID, Timeouts: uc.Timeouts, KeepAlive: uc.Keepalive.IsEnabled()}
		opts := poolOptions(uc)
		for _, tc := range uc.Targets {
			key := poolKey(uc, tc.Address)
			p, ok := g.pools[key]
			if !ok {
				if p, ok = prev[key]; !ok {
					p = connpool.New(tc.Address, opts, log.With("upstream", uc.ID))
				}
				g.pools[key] = p
			}
			u.Targets = append(u.Targets, &upstream.Target{Addr: tc.Address, Weight: tc.Weight, Pool: p})
		}
		u.Balancer = balancer.NewWRR(u.Targets)
		g.Upstreams[uc.ID] = u
		ucfg[uc.ID] = uc
	}
	for _, rc := range cfg.Routes {
		rt, err := proxy.NewRoute(rc, ucfg[rc.Upstream], g.Upstreams[rc.Upstream])
		if err != nil {
			return nil, err
		}
		g.Routes = append(g.Routes, rt)
	}
	return g, nil
}

// discard closes the pools of a generation that failed to be applied, except those shared
// with keep.
func (g *Generation) discard(keep map[string]*connpool.Pool) {
	for k, p := range g.pools {
		if _, ok := keep[k]; !ok {
			p.Close(connpool.CloseConfigChange)
		}
	}
}

func poolOptions(uc config.Upstream) connpool.Options {
	k := uc.Keepalive
	return connpool.Options{
		Enabled:        k.IsEnabled(),
		IdleTimeout:    k.IdleTimeout.D(),
		MaxIdle:        *k.MaxIdle,
		MaxConns:       k.MaxConns,
		MaxPending:     *k.MaxPending,
		QueueTimeout:   k.QueueTimeout.D(),
		MaxRequests:    k.MaxRequests,
		MaxLifetime:    k.MaxLifetime.D(),
		ConnectTimeout: uc.Timeouts.Connect.D(),
		Learn:          *k.Learn,
		SafetyFraction: *k.SafetyFraction,
		UnsafeMaxIdle:  k.UnsafeMaxIdle.D(),
	}
}

// poolKey identifies a pool by everything that shapes it, so a reload that changes nothing
// about a target keeps its pool.
func poolKey(uc config.Upstream, addr string) string {
	o := poolOptions(uc)
	o.Dial = nil
	return fmt.Sprintf("%s|%s|%+v", uc.ID, addr, o)
}
