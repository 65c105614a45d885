package gateway

import (
	"cmp"
	"net"
	"runtime/debug"
	"slices"
	"sync/atomic"
	"time"

	"sluice/internal/admin"
	"sluice/internal/config"
	"sluice/internal/metrics"
	"sluice/internal/proxy"
	"sluice/internal/server"
)

// observer is the gateway's metrics and admin side. The data path touches only route
// (one atomic load and a slice index per request); the rest runs on Apply and at scrape time.
type observer struct {
	m       *metrics.Metrics
	started time.Time
	version atomic.Pointer[string]
	// routes are the metric series of the serving generation's routes, by route index.
	routes    atomic.Pointer[routeSeries]
	noRoute   *metrics.Route
	listeners atomic.Pointer[[]admin.Listener]
	draining  atomic.Bool // Shutdown began: /admin/readyz says not ready
	reloads   reloadLog   // the last config reloads, for the dashboard (dashboard.go)

	// Under Gateway.mu.
	applied   bool // a config has been applied (later ones are reloads)
	admin     *admin.Server
	adminAddr string // the configured address admin is bound for
}

type routeSeries struct {
	gen    *Generation
	routes []*metrics.Route
	// shares are the series of the split routes' shares other than the routes themselves
	// (split.go).
	shares map[*proxy.Route]*metrics.Route
}

func newObserver(g *Gateway) *observer {
	o := &observer{started: time.Now()}
	o.m = metrics.New(g.poolStats)
	o.m.SetLimitSource(g.limitStats) // ratelimit.go
	o.m.RegisterPluginStats(g.pluginStats)
	o.m.WatchAccessLog(func() metrics.AccessLogCounts {
		s := g.access.Stats() // nil-safe: no access log counts nothing
		return metrics.AccessLogCounts{Written: s.Written, Dropped: s.Dropped, WriteErrors: s.WriteErrors}
	})
	o.noRoute = o.m.Route("", "")
	v := "dev"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		v = bi.Main.Version
	}
	o.version.Store(&v)
	return o
}

// Metrics returns the gateway's metrics (its registry is served on the admin listener).
func (g *Gateway) Metrics() *metrics.Metrics { return g.obs.m }

// SetVersion sets the build version shown by /admin/status.
func (g *Gateway) SetVersion(v string) { g.obs.version.Store(&v) }

// ReloadFailed counts a config reload that failed before reaching [Gateway.Apply] (a file that
// does not load or validate). Apply counts its own failures.
func (g *Gateway) ReloadFailed(err error) {
	g.obs.m.ReloadFailed()
	g.obs.reloads.add(admin.Reload{Time: time.Now(), Result: "rejected", Error: err.Error()})
	g.log.Debug("config reload failure counted", "err", err)
}

// observeRequest records one finished request. idx is the route index in gen, or -1; rt
// is the route that served it (a split's share: split.go), nil when none matched.
func (g *Gateway) observeRequest(gen *Generation, idx int, rt *proxy.Route, ex server.Served, rec *proxy.Record, dur time.Duration) {
	o := g.obs
	r := o.noRoute
	if idx >= 0 {
		if rs := o.routes.Load(); rs != nil && rs.gen == gen && rt == gen.Routes[idx] {
			r = rs.routes[idx]
		} else if s := rs.share(gen, rt); s != nil {
			r = s
		} else { // a request still finishing on a retired generation
			r = o.m.Route(rt.ID, rt.Upstream.ID)
		}
	}
	status := ex.Status()
	if rec.ClientGone {
		status = 499
	}
	r.Request(status, dur, rec.UpstreamTime, rec.NumAttempts > 0)
	if code, ok := grpcStatus(ex, rec); ok {
		r.GRPCCall(code)
	}
	for i := 0; i < rec.NumAttempts; i++ {
		r.Attempt(rec.Attempts[i].Outcome)
	}
	if rec.Reason != "" {
		o.m.GatewayError(rec.Reason)
	}
	o.m.Spliced(ex.SplicedBytes())
	header, trailer := ex.DroppedFields()
	o.m.DroppedFields(header, trailer+rec.DroppedRequestTrailers, rec.DroppedResponseTrailers)
	if idx >= 0 && (rec.Retries > 0 || rec.BudgetExhausted) {
		up := rt.Upstream.ID
		for i := 0; i < rec.NumAttempts; i++ {
			if c := rec.Attempts[i].Retry; c != "" {
				o.m.Retries.WithLabelValues(up, c).Inc()
			}
		}
		if rec.BudgetExhausted {
			o.m.RetryBudgetExhausted.WithLabelValues(up).Inc()
		}
	}
}

// afterApply runs under g.mu after every Apply: it counts the result and, on success, points
// the metrics at the new generation and brings the admin listener in line with cfg.
func (g *Gateway) afterApply(cfg *config.Config, err error) {
	o := g.obs
	if err != nil {
		if o.applied {
			o.m.ReloadFailed()
			o.reloads.add(admin.Reload{Time: time.Now(), Result: "rejected", Error: err.Error()})
		}
		return
	}
	gen := g.cur.Load()
	rs := &routeSeries{gen: gen, routes: make([]*metrics.Route, len(gen.Routes))}
	prev := o.routes.Load()
	fromPrev := prev != nil && prev.gen == gen.from
	for i, rt := range gen.Routes {
		if fromPrev && gen.kept[i] >= 0 {
			rs.routes[i] = prev.routes[gen.kept[i]] // a route kept as it was: its series too
			continue
		}
		rs.routes[i] = o.m.Route(rt.ID, rt.Upstream.ID)
	}
	gen.from = nil    // the change is taken: the generation before may go
	rs.addShares(o.m) // split.go
	o.routes.Store(rs)
	o.m.ConfigApplied(cfg.Hash, o.applied)
	o.reloads.add(admin.Reload{Time: gen.Created, Result: "applied", Version: cfg.Hash})
	o.applied = true
	ls := make([]admin.Listener, 0, len(cfg.Listeners))
	for _, lc := range cfg.Listeners {
		if l, ok := g.listeners[lc.Address]; ok {
			ls = append(ls, admin.Listener{Name: lc.Name, Address: lc.Address, Bound: l.srv.Addr().String()})
		}
	}
	o.listeners.Store(&ls)
	o.m.CertFilesInForce(func(f string) bool { return certFileInForce(cfg, f) })
	g.syncAdmin(cfg.Admin)
}

// certFileInForce reports whether a TLS listener of cfg serves the certificate file f.
func certFileInForce(cfg *config.Config, f string) bool {
	for _, lc := range cfg.Listeners {
		if lc.TLS != nil && slices.ContainsFunc(lc.TLS.Certificates, func(c config.CertificateFiles) bool { return c.CertFile == f }) {
			return true
		}
	}
	return false
}

// syncAdmin starts, rebinds, rekeys or stops the admin listener to match ac. A failure to
// bind is logged and does not refuse the config: client traffic matters more than the admin
// port. The next Apply tries again; until then a previous admin listener keeps serving.
func (g *Gateway) syncAdmin(ac config.Admin) {
	o := g.obs
	if !ac.IsEnabled() {
		g.closeAdmin()
		return
	}
	if o.admin != nil && o.adminAddr == ac.Address {
		o.admin.SetAPIKey(ac.APIKey)
		return
	}
	srv, err := admin.Listen(ac.Address, ac.APIKey, adminView{g}, o.m.Handler(), g.log)
	if err != nil {
		g.log.Error("admin listener not started; metrics and the admin API are unavailable until a reload binds it",
			"address", ac.Address, "err", err)
		if o.admin != nil {
			o.admin.SetAPIKey(ac.APIKey)
		}
		return
	}
	g.closeAdmin()
	o.admin, o.adminAddr = srv, ac.Address
	g.log.Info("admin listening", "address", srv.Addr().String(), "api_key", ac.APIKey != "")
	go func() {
		if err := srv.Serve(); err != nil {
			g.log.Error("admin listener failed", "address", ac.Address, "err", err)
		}
	}()
}

// closeAdmin stops the admin listener, if any. Called under g.mu.
func (g *Gateway) closeAdmin() {
	o := g.obs
	if o.admin == nil {
		return
	}
	o.admin.Close()
	g.log.Info("admin listener closed", "address", o.admin.Addr().String())
	o.admin, o.adminAddr = nil, ""
}

// AdminAddr returns the bound address of the admin listener, or nil when it is not running.
func (g *Gateway) AdminAddr() net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.obs.admin == nil {
		return nil
	}
	return g.obs.admin.Addr()
}

// poolStats is the metrics' pool source: every target pool of the serving generation.
func (g *Gateway) poolStats() []metrics.TargetPool {
	gen := g.cur.Load()
	if gen == nil {
		return nil
	}
	var out []metrics.TargetPool
	for _, id := range sortedUpstreamIDs(gen) {
		for _, t := range gen.Upstreams[id].Current().Targets {
			tp := metrics.TargetPool{Upstream: id, Target: t.Addr,
				InFlight: t.InFlight.Load(), Health: string(t.Health().State), Pool: t.Pool.Snapshot()}
			if t.H2 != nil {
				s := t.H2.Snapshot()
				tp.H2 = &s
			}
			out = append(out, tp)
		}
	}
	return out
}

func sortedUpstreamIDs(gen *Generation) []string {
	ids := make([]string, 0, len(gen.Upstreams))
	for id := range gen.Upstreams {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, cmp.Compare)
	return ids
}

// adminView is the gateway as the admin API sees it. It never takes Gateway.mu, so admin
// requests do not wait for a reload and a reload closing the admin listener cannot deadlock.
type adminView struct{ g *Gateway }

func (v adminView) Status() admin.Status {
	g := v.g
	gen := g.cur.Load()
	st := admin.Status{Version: *g.obs.version.Load(), Started: g.obs.started,
		Config: gen.Config, Generation: gen.Created}
	if ls := g.obs.listeners.Load(); ls != nil {
		st.Listeners = *ls
	}
	if c := v.Cluster(); c != nil {
		st.Cluster = c.ClusterStatus() // cluster.go
	}
	return st
}

func (v adminView) Targets(id string) ([]admin.Target, bool) {
	u, ok := v.g.cur.Load().Upstreams[id]
	if !ok {
		return nil, false
	}
	ts := u.Current().Targets
	out := make([]admin.Target, len(ts))
	for i, t := range ts {
		h := t.Health()
		out[i] = admin.Target{Address: t.Addr, Weight: t.Weight, InFlight: t.InFlight.Load(),
			Health: string(h.State), HealthReason: h.Reason, HealthSince: h.Since, Pool: t.Pool.Snapshot(),
			ConsecutiveFailures: h.ConsecutiveFailures, Ejections: h.EjectionsTotal, EjectedUntil: h.EjectedUntil}
		if t.H2 != nil {
			s := t.H2.Snapshot()
			out[i].H2 = &s
		}
	}
	return out, true
}

func (v adminView) Tunnels() []admin.Tunnel {
	ts := v.g.proxy.Tunnels()
	out := make([]admin.Tunnel, len(ts))
	now := time.Now()
	for i, t := range ts {
		out[i] = admin.Tunnel{Route: t.Route, Protocol: t.Protocol, Client: t.Client, Target: t.Target, Opened: t.Opened,
			AgeMS: now.Sub(t.Opened).Milliseconds(), BytesUp: t.BytesUp, BytesDown: t.BytesDown, RequestID: t.RequestID}
	}
	return out
}

// NotReady implements admin.Readiness: ready once a config is applied with every listener
// bound, until shutdown begins.
func (v adminView) NotReady() []string {
	g := v.g
	var out []string
	if g.obs.draining.Load() {
		out = append(out, "shutting down: draining in-flight requests")
	}
	gen := g.cur.Load()
	if gen == nil {
		return append(out, "no config applied yet")
	}
	bound := map[string]bool{}
	if ls := g.obs.listeners.Load(); ls != nil {
		for _, l := range *ls {
			bound[l.Address] = true
		}
	}
	for _, lc := range gen.Config.Listeners {
		if !bound[lc.Address] {
			out = append(out, "listener "+lc.Address+" is not bound")
		}
	}
	return out
}

var (
	_ admin.Source    = adminView{}
	_ admin.Readiness = adminView{}
)
