package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/proxy"
	"sluice/internal/router"
	"sluice/internal/upstream"
	"sluice/internal/upstream/balancer"
	"sluice/internal/upstream/health"
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

	// stop cancels the context of this generation's goroutines (active health checks);
	// checks waits for them. See Close.
	stop      context.CancelFunc
	checks    sync.WaitGroup
	closeOnce sync.Once
}

// buildNext is build that also carries target health (verdicts, ejections, slow start)
// from old, the generation being replaced (nil: none), and starts slow start for targets
// that old did not have. It starts the active health checks of the new generation; Close
// stops them.
func buildNext(cfg *config.Config, prev map[string]*connpool.Pool, old *Generation, log *slog.Logger) (*Generation, error) {
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
	var actives []*health.Active
	for _, uc := range cfg.Upstreams {
		u, err := g.buildUpstream(uc, prev, old, log)
		if err != nil {
			g.discard(prev)
			return nil, err
		}
		if uc.HealthCheck.Active != nil {
			actives = append(actives, health.NewActive(u, *uc.HealthCheck.Active))
		}
		g.Upstreams[uc.ID] = u
		ucfg[uc.ID] = uc
	}
	for _, rc := range cfg.Routes {
		rt, err := proxy.NewRoute(rc, ucfg[rc.Upstream], g.Upstreams[rc.Upstream])
		if err != nil {
			g.discard(prev)
			return nil, err
		}
		g.Routes = append(g.Routes, rt)
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.stop = cancel
	for _, a := range actives {
		g.checks.Go(func() { a.Run(ctx) })
	}
	return g, nil
}

// buildUpstream builds one upstream: targets with their pools (reused from prev), health
// carried from old, the configured balancer, passive checks and limits.
func (g *Generation) buildUpstream(uc config.Upstream, prev map[string]*connpool.Pool, old *Generation, log *slog.Logger) (*upstream.Upstream, error) {
	u := &upstream.Upstream{ID: uc.ID, Timeouts: uc.Timeouts, KeepAlive: uc.Keepalive.IsEnabled(),
		Log: log, SlowStart: uc.Balancer.SlowStart.D(),
		MaxRequests: int64(uc.Limits.MaxConcurrentRequests), MaxRetries: int64(uc.Limits.MaxConcurrentRetries)}
	if pt := uc.HealthCheck.PanicThreshold; pt != nil {
		u.PanicThreshold = *pt
	}
	var before map[string]*upstream.Target
	if old != nil {
		before = map[string]*upstream.Target{}
		if ou := old.Upstreams[uc.ID]; ou != nil {
			for _, t := range ou.Targets {
				before[t.Addr] = t
			}
		}
	}
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
		t := &upstream.Target{Addr: tc.Address, Weight: tc.Weight, Pool: p}
		if ot, ok := before[tc.Address]; ok {
			t.Inherit(ot)
		} else if before != nil {
			u.StartSlowStart(t) // joined in a reload
		}
		u.Targets = append(u.Targets, t)
	}
	b, err := balancer.New(uc.Balancer, u.Targets)
	if err != nil {
		return nil, fmt.Errorf("upstreams %q: balancer: %w", uc.ID, err)
	}
	u.Balancer = b
	if pc := uc.HealthCheck.Passive; pc != nil {
		u.Passive = health.NewPassive(u, *pc)
	}
	return u, nil
}

// Close stops the generation's goroutines (active health checks) and waits for them. It is
// idempotent. The gateway calls it when the generation is retired (after its requests
// drained), on Shutdown, and when a built generation is discarded.
func (g *Generation) Close() {
	g.closeOnce.Do(func() {
		if g.stop != nil {
			g.stop()
		}
		g.checks.Wait()
	})
}

// discard closes the pools of a generation that failed to be applied, except those shared
// with keep.
func (g *Generation) discard(keep map[string]*connpool.Pool) {
	g.Close()
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
