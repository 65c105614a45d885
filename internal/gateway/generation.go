package gateway

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/h2pool"
	"sluice/internal/plugin"
	"sluice/internal/proxy"
	"sluice/internal/realip"
	"sluice/internal/router"
	"sluice/internal/upstream"
	"sluice/internal/upstream/balancer"
	"sluice/internal/upstream/discovery"
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
	// Plugins are the route chains and consumers (plugins.go); trusted are the listeners'
	// trusted proxies, by listener name.
	Plugins *plugin.Set
	trusted map[string]*realip.Trusted
	// traffic are the routes' splits and mirrors (split.go).
	traffic traffic
	// kept is, by route index, the index in the generation this one was built from of the
	// route it took as it was (ApplyChange), -1 for a route built; nil for a whole build.
	// from is that generation until the gateway's observers took the change (afterApply).
	kept []int32
	from *Generation
	// seq numbers generations in the order built; fromSeq is from's (closeChangedTunnels).
	seq, fromSeq uint64

	inflight atomic.Int64
	// pools holds the pools of all generations (shared with the ones before and after this
	// one); held are the references this generation's static targets took, dropped by Close.
	// Discovered targets take and drop theirs through their Membership.
	pools *poolRefs
	held  []poolID

	// members keep the target sets of upstreams with named targets, by upstream ID;
	// watchers re-resolve the names once the generation runs.
	members  map[string]*upstream.Membership
	watchers []watch

	// stop cancels the context of this generation's goroutines (active health checks, DNS
	// watchers); checks waits for them. See Close.
	stop      context.CancelFunc
	checks    sync.WaitGroup
	closeOnce sync.Once
	// stopActive cancels the active health checks alone: the gateway calls it when the
	// generation is replaced, while its requests may still drain (Gateway.apply).
	stopActive context.CancelFunc
}

// watch is a name's watcher with the addresses in force and the wait until it resolves again.
type watch struct {
	w    *discovery.Watcher
	last []upstream.Endpoint
	wait time.Duration
}

// genSeq numbers generations (Generation.seq).
var genSeq atomic.Uint64

// drainSettle is the least time a target removed by discovery keeps its pool: a request that
// picked it just before the swap reaches the pool within it.
const drainSettle = time.Second

// buildNext compiles cfg into a Generation that replaces old (nil: none). It shares the pools
// of old whose target and settings are unchanged, so that warm connections and learned idle
// timeouts survive a reload; it also carries target health (verdicts, ejections, slow start)
// from old, and starts slow start for targets that old did not have. It starts the active
// health checks of the new generation; Close stops them. On error, what it built is closed
// (pools only it used included) and old is left as it was.
func buildNext(cfg *config.Config, old *Generation, log *slog.Logger) (*Generation, error) {
	return build(cfg, old, nil, log)
}

// build is buildNext; ch, when not nil, is the change from old's config to cfg, and what it
// does not touch is taken from old as it is (incremental.go).
func build(cfg *config.Config, old *Generation, ch *config.Change, log *slog.Logger) (*Generation, error) {
	keep := newKeeper(old, ch)
	table, err := keep.table(cfg) // incremental.go
	if err != nil {
		return nil, fmt.Errorf("compile routes: %w", err)
	}
	g := &Generation{
		Config: cfg, Table: table, Created: time.Now(),
		Upstreams: make(map[string]*upstream.Upstream, len(cfg.Upstreams)),
		pools:     &poolRefs{m: map[poolID]*poolRef{}, why: connpool.CloseConfigChange},
		members:   map[string]*upstream.Membership{},
	}
	if old != nil {
		g.pools = old.pools
	}
	g.seq = genSeq.Add(1)
	if keep != nil {
		g.from, g.fromSeq, g.kept = old, old.seq, make([]int32, 0, len(cfg.Routes))
	}
	ucfg := make(map[string]config.Upstream, len(cfg.Upstreams))
	var actives []*health.Active
	for _, uc := range cfg.Upstreams {
		u := keep.upstream(g, uc)
		if u == nil {
			if u, err = g.buildUpstream(uc, old, log); err != nil {
				g.Close()
				return nil, err
			}
		}
		if uc.HealthCheck.Active != nil {
			actives = append(actives, health.NewActive(u, *uc.HealthCheck.Active))
		}
		g.Upstreams[uc.ID] = u
		ucfg[uc.ID] = uc
	}
	g.Routes = make([]*proxy.Route, 0, len(cfg.Routes))
	for i := range cfg.Routes {
		rc := cfg.Routes[i]
		rt, kept := keep.route(g, rc)
		if rt == nil {
			if rt, err = proxy.NewRoute(*rc, ucfg[rc.Upstream], g.Upstreams[rc.Upstream]); err != nil {
				g.Close()
				return nil, err
			}
		}
		g.Routes = append(g.Routes, rt)
		if keep != nil {
			g.kept = append(g.kept, int32(kept))
		}
	}
	if err := g.buildTraffic(cfg, ucfg); err != nil { // split.go
		g.Close()
		return nil, err
	}
	if err := g.buildPlugins(cfg, keep, log); err != nil { // plugins.go
		g.Close()
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	g.stop = cancel
	actx, acancel := context.WithCancel(ctx)
	g.stopActive = acancel
	for _, a := range actives {
		g.checks.Go(func() { a.Run(actx) })
	}
	for _, w := range g.watchers {
		g.checks.Go(func() { w.w.Run(ctx, w.last, w.wait) })
	}
	return g, nil
}

// buildUpstream builds one upstream: targets with their pools (shared with old when
// unchanged), health carried from old, the configured balancer, passive checks and limits.
// Named targets are resolved (or taken from old) and kept up to date by watchers; see
// buildMembership.
func (g *Generation) buildUpstream(uc config.Upstream, old *Generation, log *slog.Logger) (*upstream.Upstream, error) {
	u := &upstream.Upstream{ID: uc.ID,
		Log: log, SlowStart: uc.Balancer.SlowStart.D(),
		MaxRequests: int64(uc.Limits.MaxConcurrentRequests), MaxRetries: int64(uc.Limits.MaxConcurrentRetries)}
	if pt := uc.HealthCheck.PanicThreshold; pt != nil {
		u.PanicThreshold = *pt
	}
	var before map[string]*upstream.Target
	if old != nil {
		before = map[string]*upstream.Target{}
		if ou := old.Upstreams[uc.ID]; ou != nil {
			for _, t := range ou.Current().Targets {
				before[t.Addr] = t
			}
		}
	}
	up, err := g.upstreamPools(uc, log)
	if err != nil {
		return nil, fmt.Errorf("upstreams %q: %w", uc.ID, err)
	}
	var targets []*upstream.Target
	for _, tc := range uc.Targets {
		if tc.IsName() {
			continue
		}
		g.held = append(g.held, up.id("", tc.Address))
		t := &upstream.Target{Addr: tc.Address, Weight: tc.Weight, Pool: up.acquire("", tc.Address)}
		t.H2 = up.acquireH2("", tc.Address)
		if ot, ok := before[tc.Address]; ok {
			inherit(u, uc, t, ot)
		} else if before != nil {
			u.StartSlowStart(t) // joined in a reload
		}
		targets = append(targets, t)
	}
	b, err := balancer.New(uc.Balancer, targets)
	if err != nil {
		return nil, fmt.Errorf("upstreams %q: balancer: %w", uc.ID, err)
	}
	u.Swap(targets, b)
	if pc := uc.HealthCheck.Passive; pc.IsEnabled() {
		u.Passive = health.NewPassive(u, *pc)
	}
	if slices.ContainsFunc(uc.Targets, config.Target.IsName) {
		g.buildMembership(uc, u, up, before, old, log)
	}
	return u, nil
}

// inherit carries ot's health over a reload into t, its successor in u, less the active
// check's verdict when uc has no active check any more (nothing would revise it).
func inherit(u *upstream.Upstream, uc config.Upstream, t, ot *upstream.Target) {
	t.Inherit(ot)
	if uc.HealthCheck.Active == nil {
		u.DropActive(t, "active check removed in a reload")
	}
}

// buildMembership makes u's target set follow its named targets. Each name starts with the
// addresses old had for it (no DNS wait on reload; the watcher re-resolves at once) or else
// is resolved now, all names in parallel, bounded by discovery.timeout. A name that does not
// resolve starts with no targets and is retried every min_ttl.
func (g *Generation) buildMembership(uc config.Upstream, u *upstream.Upstream, up upstreamPools, before map[string]*upstream.Target, old *Generation, log *slog.Logger) {
	live := false
	m := &upstream.Membership{
		Upstream:    u,
		NewBalancer: func(ts []*upstream.Target) (upstream.Balancer, error) { return balancer.New(uc.Balancer, ts) },
		Acquire:     up.acquire,
		AcquireH2:   up.acquireH2,
		Release:     up.release,
		Joined: func(t *upstream.Target) {
			if ot, ok := before[t.Addr]; ok && !live {
				inherit(u, uc, t, ot)
			} else if before != nil || live {
				u.StartSlowStart(t)
			}
		},
		Settle: drainSettle, Grace: shutdownGrace(g.Config),
	}
	for _, t := range u.Current().Targets {
		m.AddStatic(t)
	}
	g.members[uc.ID] = m
	ws := g.watchersFor(uc, m, log)
	var om *upstream.Membership
	if old != nil {
		om = old.members[uc.ID]
	}
	var wg sync.WaitGroup
	for i := range ws {
		if om != nil {
			if eps, ok := om.Endpoints(ws[i].w.Name.String()); ok {
				ws[i].last = eps
				continue
			}
		}
		wg.Go(func() { ws[i].last, ws[i].wait = ws[i].w.Resolve(context.Background()) })
	}
	wg.Wait()
	for _, w := range ws { // in config order: the set's order is stable
		if w.wait == 0 {
			m.Update(w.w.Name.String(), w.last) // carried over: not news, no log line
		} else {
			w.w.Publish(w.last, w.wait)
		}
	}
	live = true // Joined runs under m's lock; the watchers start after this write
	g.watchers = append(g.watchers, ws...)
}

// watchersFor returns a watcher per named target of uc, applying to m.
func (g *Generation) watchersFor(uc config.Upstream, m *upstream.Membership, log *slog.Logger) []watch {
	d := uc.Discovery
	server := d.ResolverAddr()
	if server == "" {
		server = discovery.SystemServer()
	}
	r := &discovery.Resolver{Client: &discovery.Client{Server: server, Timeout: d.Timeout.D()},
		MinTTL: d.MinTTL.D(), MaxTTL: d.MaxTTL.D()}
	var ws []watch
	for _, tc := range uc.Targets {
		if !tc.IsName() {
			continue
		}
		n := discovery.Name{SRV: tc.SRV, Weight: tc.Weight}
		if tc.SRV == "" {
			host, port, _ := net.SplitHostPort(tc.Address)
			n.Host = host
			n.Port, _ = strconv.Atoi(port)
		}
		name := n.String()
		w := &discovery.Watcher{Resolver: r, Name: n, Upstream: uc.ID, Log: log,
			Apply: func(eps []upstream.Endpoint) ([]string, []string, error) { return m.Update(name, eps) }}
		ws = append(ws, watch{w: w})
	}
	return ws
}

// Close stops the generation's goroutines (active health checks, DNS watchers), waits for
// them, and drops the generation's references on pools: a pool no other generation holds is
// closed (connections in use close when their request releases them). It is idempotent.
// The gateway calls it when the generation is retired (after its requests drained), on
// Shutdown, and when a built generation is discarded.
func (g *Generation) Close() {
	g.closeOnce.Do(func() {
		if g.stop != nil {
			g.stop()
		}
		g.checks.Wait()
		g.closeMirrors() // split.go
		g.Plugins.Close()
		for _, m := range g.members {
			m.Close()
		}
		for _, id := range g.held {
			g.pools.release(id)
		}
	})
}

// poolID identifies a pool across generations: its upstream, its target's address and the
// identity of its options. A reload that changes none of them keeps the pool.
type poolID struct {
	upstream, addr string
	opts           connpool.Identity
	h2             string // the protocol and h2 settings (h2pools.go); "" for http1
}

// poolRefs holds the pools of every generation not yet closed, by identity. A pool stays open
// while a target of any generation holds it: a static target from its generation's build to
// its Close, a discovered one from its Membership's Acquire to the matching Release. The last
// release closes it. So a new generation built while the old one still serves finds the
// old one's unchanged pools, and a pool whose target or settings changed is closed once the
// old generation is retired after draining, or at once when a build fails.
type poolRefs struct {
	mu  sync.Mutex
	m   map[poolID]*poolRef
	why connpool.CloseReason // recorded by the pools closed from now on
}

type poolRef struct {
	p    *connpool.Pool
	h2   *h2pool.Pool // the HTTP/2 pool of an h2/h2c/auto upstream, made on first use (h2pools.go)
	link *alpnLink    // protocol auto: how p reaches h2 (h2pools.go); nil otherwise
	n    int
}

func (r *poolRefs) acquire(id poolID, mk func() *poolRef) *connpool.Pool {
	r.mu.Lock()
	defer r.mu.Unlock()
	ref := r.m[id]
	if ref == nil {
		ref = mk()
		r.m[id] = ref
	}
	ref.n++
	return ref.p
}

func (r *poolRefs) release(id poolID) {
	r.mu.Lock()
	ref := r.m[id]
	if ref == nil {
		r.mu.Unlock()
		return
	}
	if ref.n--; ref.n > 0 {
		r.mu.Unlock()
		return
	}
	delete(r.m, id)
	why := r.why
	r.mu.Unlock()
	ref.p.Close(why)
	if ref.h2 != nil {
		ref.h2.Close(h2pool.CloseReason(why))
	}
}

// closeAs makes pools closed from now on record why (the gateway's Shutdown: CloseShutdown).
func (r *poolRefs) closeAs(why connpool.CloseReason) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.why = why
}

// upstreamPools takes and drops references on the pools of one upstream's targets.
type upstreamPools struct {
	refs     *poolRefs
	upstream string
	opts     connpool.Options
	tls      *upstreamTLS // nil: plain TCP
	log      *slog.Logger
	uc       config.Upstream // for the h2 pools (h2pools.go)
}

func (g *Generation) upstreamPools(uc config.Upstream, log *slog.Logger) (upstreamPools, error) {
	ut, err := buildUpstreamTLS(uc, log)
	if err != nil {
		return upstreamPools{}, err
	}
	return upstreamPools{refs: g.pools, upstream: uc.ID, opts: poolOptions(uc), tls: ut, log: log.With("upstream", uc.ID), uc: uc}, nil
}

// options returns the pool options for the addresses name resolved to ("" for a target
// given by address). Over TLS, TLS is the upstream's shared config, without the server name.
func (u upstreamPools) options(name string) connpool.Options {
	o := u.opts
	if u.tls != nil {
		o.TLS, o.TLSID = u.tls.base, u.tls.id+" "+u.tls.serverName(name)
	}
	return o
}

func (u upstreamPools) id(name, addr string) poolID {
	return poolID{upstream: u.upstream, addr: addr, opts: u.options(name).Identity(), h2: h2Identity(u.uc)}
}

// acquire returns the pool for addr, an address name resolved to, shared when one with the
// same identity exists, and takes a reference on it; release drops one.
func (u upstreamPools) acquire(name, addr string) *connpool.Pool {
	return u.refs.acquire(u.id(name, addr), func() *poolRef {
		o := u.options(name)
		if o.TLS != nil {
			o.TLS = u.tls.poolConfig(name)
		}
		ref := &poolRef{}
		if u.uc.Protocol == config.ProtocolAuto {
			ref.link = new(alpnLink)
			o.ALPN = ref.link // h2pools.go
		}
		ref.p = connpool.New(addr, o, u.log)
		return ref
	})
}

func (u upstreamPools) release(name, addr string) { u.refs.release(u.id(name, addr)) }

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
		Preconnect:     *k.Preconnect,
	}
}
