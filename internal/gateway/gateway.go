// Package gateway wires a config into a running gateway: it builds a Generation (route table,
// upstreams, pools) per config version, swaps it in atomically, keeps listeners in step with the
// config, serves each request (route match, proxy, access log), and drains on shutdown.
package gateway

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"runtime/debug"
	"strings"
	"sync"
	"time"
	"unsafe"

	"sync/atomic"

	"sluice/internal/accesslog"
	"sluice/internal/acme"
	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/h1"
	"sluice/internal/netio"
	"sluice/internal/plugin"
	"sluice/internal/proxy"
	"sluice/internal/reason"
	"sluice/internal/router"
	"sluice/internal/server"
)

// Gateway is the running gateway.
type Gateway struct {
	log    *slog.Logger
	access *accesslog.Logger
	proxy  *proxy.Proxy
	cur    atomic.Pointer[Generation]

	mu        sync.Mutex // serializes Apply and Shutdown
	listeners map[string]*listener
	retiring  sync.WaitGroup
	stopping  bool
	edge      *edgeTLS // the serving config's listener TLS (tls.go)

	// redirects are the HTTPS ports of redirecting listeners, by listener name.
	redirects atomic.Pointer[map[string]int]
	// acme are the serving config's ACME managers, for HTTP-01 challenges (tls.go).
	acme atomic.Pointer[[]*acme.Manager]

	obs *observer // metrics and the admin listener (observe.go)

	// logFields are the access log fields of the serving config (log.access_fields),
	// a config.AccessFieldSet (accessfields.go).
	logFields atomic.Uint64

	clusterMode atomic.Pointer[clusterBox] // cluster mode's admin side; nil in file mode (cluster.go)

	tracing tracingState // the tracer of the tracing block (tracing.go)
}

type listener struct {
	cfg config.Listener
	ln  net.Listener // what srv accepts from (its TCP keep-alive is set there)
	srv *server.Server
	err chan error
}

// New returns a Gateway that logs to log and writes access lines to access (nil: none).
func New(log *slog.Logger, access *accesslog.Logger) *Gateway {
	g := &Gateway{
		log: log.With("component", "gateway"), access: access,
		proxy: proxy.New(log), listeners: map[string]*listener{},
	}
	g.obs = newObserver(g)
	g.proxy.SetTunnelObserver(g.obs.m)
	return g
}

// Current returns the generation serving new requests (nil before the first Apply).
func (g *Gateway) Current() *Generation { return g.cur.Load() }

// Addrs returns the bound address of every listener, by configured address.
func (g *Gateway) Addrs() map[string]net.Addr {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]net.Addr, len(g.listeners))
	for a, l := range g.listeners {
		out[a] = l.srv.Addr()
	}
	return out
}

// Apply builds cfg and swaps it in. On any error the running generation keeps serving and the
// error says why. Listeners are opened before the swap, so a config whose new listener address
// cannot be bound is refused as a whole.
func (g *Gateway) Apply(cfg *config.Config) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	err := g.apply(cfg, nil)
	g.afterApply(cfg, err) // metrics and the admin listener (observe.go)
	return err
}

// apply builds and swaps in cfg; ch, when not nil, is the change from the serving config
// (ApplyChange, incremental.go).
func (g *Gateway) apply(cfg *config.Config, ch *config.Change) error {
	if g.stopping {
		return errors.New("gateway is shutting down")
	}
	old := g.cur.Load()
	gen, err := build(cfg, old, ch, g.log)
	if err != nil {
		return err
	}
	commitTracing, abortTracing, err := g.tracing.prepare(cfg, g.obs.m, g.log) // tracing.go
	if err != nil {
		gen.Close()
		return err
	}
	gen.startMirrors(g.proxy, g.obs.m) // split.go
	edge, err := g.buildEdgeTLS(cfg)
	if err != nil {
		gen.Close() // closes the pools only gen used
		abortTracing()
		return err
	}
	opened, err := g.openListeners(cfg, edge)
	if err != nil {
		gen.Close() // closes the pools only gen used
		edge.close(g.edge)
		abortTracing()
		return err
	}
	// From here on nothing refuses cfg: what is process-wide rather than part of gen changes
	// only now, so that a refused config leaves none of it behind. The kept listeners'
	// settings, error details and the access log fields before the swap (no request of gen
	// runs without them).
	g.updateListeners(cfg, edge)
	g.proxy.ExposeDetails(cfg.Errors.ExposeDetails)
	g.logFields.Store(uint64(cfg.Log.AccessFieldSet())) // accessfields.go
	g.cur.Store(gen)
	if old != nil && old.stopActive != nil {
		// gen checks the targets from now on; old's checks would probe beside them until
		// its last request ended (a kept upstream twice, a changed check the old way).
		old.stopActive()
	}
	commitTracing()
	prev := g.edge
	prev.close(edge)
	g.edge = edge
	edge.watch(prev)
	g.redirects.Store(&edge.redirects)
	g.acme.Store(&edge.acme)
	g.proxy.PruneBudgets(func(id string) bool { _, ok := gen.Upstreams[id]; return ok })
	for _, l := range opened {
		g.startListener(l)
	}
	g.closeRemovedListeners(cfg)
	g.log.Info("config applied", "version", short(cfg.Hash), "file", cfg.File,
		"routes", len(cfg.Routes), "upstreams", len(cfg.Upstreams), "listeners", len(cfg.Listeners))
	if old != nil {
		g.retiring.Add(1)
		go g.retire(old, gen, shutdownGrace(cfg))
	}
	return nil
}

func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}

func shutdownGrace(cfg *config.Config) time.Duration { return cfg.ShutdownGraceValue() }

func settings(lc config.Listener, edge *edgeTLS, exposeDetails bool) server.Settings {
	var hs time.Duration
	if lc.TLS != nil {
		hs = lc.TLS.HandshakeTimeout.D()
	}
	return server.Settings{
		TLS:               edge.configs[lc.Address],
		ClientCAs:         edge.clientCAs[lc.Address],
		HandshakeTimeout:  hs,
		Name:              lc.Name,
		ReadHeaderTimeout: lc.ReadHeaderTimeout.D(),
		ReadTimeout:       lc.ReadTimeout.D(),
		WriteTimeout:      lc.WriteTimeout.D(),
		IdleTimeout:       lc.IdleTimeout.D(),
		Limits:            h1.Limits{MaxHeaderBytes: lc.MaxHeaderBytes, MaxHeaders: lc.MaxHeaders},
		MaxBodyBytes:      lc.MaxBodyBytes,
		ExposeDetails:     exposeDetails,
		Underscores:       underscores[lc.UnderscoresInHeaders],
		H2:                h2Settings(lc),    // h2.go
		ProxyProtocol:     proxyProtocol(lc), // plugins.go
	}
}

// underscores maps listeners[].underscores_in_headers to the server's policy ("" and "drop"
// to the zero value, UnderscoresDrop).
var underscores = map[string]server.Underscores{
	config.UnderscoresAllow:  server.UnderscoresAllow,
	config.UnderscoresReject: server.UnderscoresReject,
}

// openListeners binds the addresses that cfg adds. The kept ones are left as they are
// (updateListeners): a later address that cannot bind refuses cfg.
func (g *Gateway) openListeners(cfg *config.Config, edge *edgeTLS) ([]*listener, error) {
	var opened []*listener
	for _, lc := range cfg.Listeners {
		if _, ok := g.listeners[lc.Address]; ok {
			continue
		}
		ln, err := netio.Listen(lc.Address, lc.TCPKeepaliveValue())
		if err != nil {
			for _, o := range opened {
				o.srv.Shutdown(context.Background())
			}
			return nil, fmt.Errorf("listeners: %w", err)
		}
		opened = append(opened, &listener{cfg: lc, ln: ln, srv: server.New(ln, settings(lc, edge, cfg.Errors.ExposeDetails), g, g.log), err: make(chan error, 1)})
	}
	return opened, nil
}

// updateListeners gives the listeners cfg keeps their settings under cfg.
func (g *Gateway) updateListeners(cfg *config.Config, edge *edgeTLS) {
	for _, lc := range cfg.Listeners {
		if l, ok := g.listeners[lc.Address]; ok {
			l.srv.Update(settings(lc, edge, cfg.Errors.ExposeDetails))
			// Accepted sockets inherit the listening socket's keep-alive (netio.Listen):
			// setting it there applies to the connections accepted from now on.
			if err := netio.SetListenerKeepalive(l.ln, lc.TCPKeepaliveValue()); err != nil {
				g.log.Warn("listener keeps its previous tcp_keepalive", "listener", lc.Name, "err", err)
			}
		}
	}
}

func (g *Gateway) startListener(l *listener) {
	g.listeners[l.cfg.Address] = l
	g.log.Info("listening", "listener", l.cfg.Name, "address", l.srv.Addr().String())
	go func() { l.err <- l.srv.Serve() }()
}

func (g *Gateway) closeRemovedListeners(cfg *config.Config) {
	keep := map[string]bool{}
	for _, lc := range cfg.Listeners {
		keep[lc.Address] = true
	}
	for addr, l := range g.listeners {
		if keep[addr] {
			continue
		}
		delete(g.listeners, addr)
		g.log.Info("closing listener removed from config", "address", addr)
		g.retiring.Add(1)
		go func() {
			defer g.retiring.Done()
			ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace(cfg))
			defer cancel()
			l.srv.Shutdown(ctx)
		}()
	}
}

// retire waits until no request runs on old (bounded by grace), then closes it, which
// closes the pools no other generation holds. Requests still running after grace keep their
// connections: a closed pool only closes a connection when it is released. The tunnels of
// old's routes are checked against next, the generation that replaced old: a route object
// next took from old is checked again when next is retired.
func (g *Gateway) retire(old, next *Generation, grace time.Duration) {
	defer g.retiring.Done()
	deadline := time.Now().Add(grace)
	for old.inflight.Load() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	closeChangedTunnels(old, next)
	old.Close()
}

// closeChangedTunnels stops the tunnels of old's routes that next removed or changed (the
// route or its upstream's config differs); tunnels of unchanged routes go on, handed over to
// next's route of the same id when next built its own, so that the reload that later changes
// the route closes them too.
func closeChangedTunnels(old, next *Generation) {
	same, kept := routesKept(old, next)
	for i, rt := range old.Routes {
		if same(i) {
			continue // taken by next as it was (ApplyChange): not a split route either
		}
		rc := old.Config.Routes[i]
		nrc, j := kept(rc.ID)
		changed := nrc == nil || !reflect.DeepEqual(rc, nrc)
		if changed || !reflect.DeepEqual(old.Config.UpstreamByID(rc.Upstream), next.Config.UpstreamByID(nrc.Upstream)) {
			rt.CloseTunnels()
		} else {
			rt.HandTunnelsTo(next.Routes[j])
		}
		// A split route's tunnels run on the share that was picked (split.go): the shares
		// other than rt are routes of their own, each towards its upstream.
		if i >= len(old.traffic.splits) || old.traffic.splits[i] == nil {
			continue
		}
		for _, srt := range old.traffic.splits[i].Routes() {
			if srt == rt {
				continue
			}
			if changed || !reflect.DeepEqual(old.Config.UpstreamByID(srt.Upstream.ID), next.Config.UpstreamByID(srt.Upstream.ID)) {
				srt.CloseTunnels()
			} else if nsrt := next.share(j, srt.Upstream.ID); nsrt != nil {
				srt.HandTunnelsTo(nsrt)
			} else {
				srt.CloseTunnels()
			}
		}
	}
}

// share returns the share towards upstream id of the split route at index i, nil if none.
func (g *Generation) share(i int, id string) *proxy.Route {
	if i >= len(g.traffic.splits) || g.traffic.splits[i] == nil {
		return nil
	}
	for _, rt := range g.traffic.splits[i].Routes() {
		if rt.Upstream.ID == id {
			return rt
		}
	}
	return nil
}

// routesKept says which of old's routes next took as they were (by old's index), and finds
// next's config of a route by id, with its index. After ApplyChange it reads next.kept and
// searches next's routes only for the few routes the change touched; otherwise it indexes
// every route.
func routesKept(old, next *Generation) (same func(int) bool, kept func(string) (*config.Route, int)) {
	if next == nil || next == old {
		return func(int) bool { return false }, func(string) (*config.Route, int) { return nil, -1 }
	}
	if next.kept != nil && next.fromSeq == old.seq {
		taken := make([]bool, len(old.Routes))
		for _, j := range next.kept {
			if j >= 0 {
				taken[j] = true
			}
		}
		return func(i int) bool { return taken[i] }, func(id string) (*config.Route, int) {
			for i := range next.Config.Routes {
				if next.Config.Routes[i].ID == id {
					return next.Config.Routes[i], i
				}
			}
			return nil, -1
		}
	}
	byID := map[string]int{}
	taken := map[*proxy.Route]bool{}
	for i := range next.Config.Routes {
		byID[next.Config.Routes[i].ID] = i
		taken[next.Routes[i]] = true
	}
	return func(i int) bool { return taken[old.Routes[i]] }, func(id string) (*config.Route, int) {
		if i, ok := byID[id]; ok {
			return next.Config.Routes[i], i
		}
		return nil, -1
	}
}

// Shutdown stops accepting, lets in-flight requests finish until ctx ends, and closes pools.
func (g *Gateway) Shutdown(ctx context.Context) error {
	g.mu.Lock()
	g.stopping = true
	g.obs.draining.Store(true) // /admin/readyz answers 503 while the listeners drain
	ls := g.listeners
	g.listeners = map[string]*listener{}
	g.mu.Unlock()
	var wg sync.WaitGroup
	errs := make(chan error, len(ls))
	for _, l := range ls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- l.srv.Shutdown(ctx)
		}()
	}
	wg.Wait()
	close(errs)
	g.retiring.Wait()
	if gen := g.cur.Load(); gen != nil {
		gen.pools.closeAs(connpool.CloseShutdown)
		gen.Close() // the last generation: every pool closes
	}
	g.tracing.shutdown(ctx) // exports what is queued (tracing.go)
	g.mu.Lock()
	g.closeAdmin() // observe.go
	g.edge.close(nil)
	g.mu.Unlock()
	var err error
	for e := range errs {
		err = errors.Join(err, e)
	}
	return err
}

// ServeH1 implements server.Handler: match a route on the current generation and proxy.
func (g *Gateway) ServeH1(ex *server.Exchange) {
	gen := g.enter()
	defer gen.inflight.Add(-1)

	if ms := *g.acme.Load(); len(ms) > 0 && ex.TLS() == nil && g.answerHTTPChallenge(ex, ms) {
		return
	}
	if r := *g.redirects.Load(); len(r) > 0 {
		if port, ok := r[ex.ListenerName()]; ok {
			redirectHTTPS(ex, port)
			g.logAnswered(ex)
			return
		}
	}
	g.serve(gen, ex)
}

// downstream is a request as ServeH1 and ServeH2 (h2.go) serve it: the proxy's view and
// the server's accounting view of an HTTP/1.1 exchange or an HTTP/2 stream.
type downstream interface {
	proxy.Downstream
	server.Served
}

// serve routes and proxies ds on gen, then logs and counts it.
func (g *Gateway) serve(gen *Generation, ex downstream) {
	st := newReqState(ex)
	defer st.release()
	rec, in := &st.rec, &st.in
	st.resolveClient(gen, ex)                                       // plugins.go
	st.trace.begin(g.tracing.cur.Load(), &ex.Request().Header, rec) // tracing.go
	idx, _, ok := gen.Table.Match(in)
	routeID, upstreamID := "", ""
	var rt *proxy.Route
	if !ok {
		idx = -1
		rec.Reason = reason.NoRoute
		ex.WriteError(reason.New(404, reason.NoRoute, "", nil), "")
	} else {
		rt = gen.route(idx, st.hdr) // the route, or its split's pick (split.go)
		routeID, upstreamID = rt.ID, rt.Upstream.ID
		g.serveRoute(ex, rt, rec, st.begin(gen, idx, ex), &st.trace) // plugins.go
	}
	dur := time.Since(ex.StartTime()) // one clock read for the log and the metrics
	g.logAccess(ex, in, routeID, upstreamID, rec, dur)
	g.observeRequest(gen, idx, rt, ex, rec, dur)             // metrics (observe.go)
	finishTrace(&st.trace, ex, in, routeID, upstreamID, rec) // tracing.go
}

// enter returns the current generation with the request counted in its inflight, in one
// step as far as retire can tell: a generation swapped out between the load and the count
// may already be retiring (its pools closing), so the request moves to the new one.
func (g *Gateway) enter() *Generation {
	for {
		gen := g.cur.Load()
		gen.inflight.Add(1)
		if g.cur.Load() == gen {
			return gen
		}
		gen.inflight.Add(-1)
	}
}

// serveRoute proxies ex on rt. A panic (a bug) is logged with its stack and the request id,
// counted, and answered 502 internal_error, or the response is cut off if it had begun; the
// client connection closes after it. The proxy's own defers have given back its connection,
// pool slot and limits by then.
func (g *Gateway) serveRoute(ex downstream, rt *proxy.Route, rec *proxy.Record, pr *plugin.Request, ts *traceState) {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		g.obs.m.Panicked()
		g.log.Error("panic serving request", "request_id", string(ex.RequestIDBytes()), "route", rt.ID,
			"panic", v, "stack", string(debug.Stack()))
		e := reason.New(502, reason.InternalError, "", fmt.Errorf("panic: %v", v))
		rec.Reason, rec.Err = e.Code, e
		ex.CloseAfter()
		proxy.WriteError(ex, e, "", pr.Hooks()) // with the chain's fields (CORS); aborts instead when the head went out
	}()
	g.serveChain(ex, rt, rec, pr, ts) // plugins.go
}

// logAnswered logs a request the gateway answered before routing (an ACME challenge, an
// HTTPS redirect), with the pooled per-request state: no allocation for the strings.
func (g *Gateway) logAnswered(ex server.Served) {
	st := newReqState(ex)
	defer st.release()
	g.logAccess(ex, &st.in, "", "", &st.rec, time.Since(ex.StartTime()))
}

// Rejected implements server.Rejecter: a request the server refused before routing gets an
// access log line and counts as a gateway error.
func (g *Gateway) Rejected(ex server.Served, code reason.Code, why string) {
	st := newReqState(ex)
	defer st.release()
	st.rec.Reason = code
	st.rec.Err = errors.New(why)
	dur := time.Since(ex.StartTime())
	g.logAccess(ex, &st.in, "", "", &st.rec, dur)
	if gen := g.cur.Load(); gen != nil {
		g.observeRequest(gen, -1, nil, ex, &st.rec, dur)
	}
}

var _ server.Rejecter = (*Gateway)(nil)

// The HTTP/1.1 exchange is the proxy's downstream, with every optional capability.
var (
	_ proxy.Downstream      = (*server.Exchange)(nil)
	_ proxy.BodySplicer     = (*server.Exchange)(nil)
	_ proxy.ResponseSplicer = (*server.Exchange)(nil)
	_ proxy.Tunneler        = (*server.Exchange)(nil)
	_ proxy.CancelNotifier  = (*server.Exchange)(nil)
	_ proxy.InterimWriter   = (*server.Exchange)(nil)
	_ proxy.BodyWatcher     = (*server.Exchange)(nil)
	_ proxy.Arrival         = (*server.Exchange)(nil)
)

// reqState is the per-request state of ServeH1, pooled so that routing and logging a request
// allocate nothing.
type reqState struct {
	rec    proxy.Record
	in     router.Input
	hdr    *h1.Header
	lookup func(name string) (string, bool)
	tls    *tls.ConnectionState
	sub    string // the client certificate's subject (server.Served.ClientSubject)
	tlsFn  func(name string) (string, bool)
	client clientState // plugins.go
	trace  traceState  // tracing.go
}

var reqStates = sync.Pool{New: func() any {
	st := &reqState{}
	st.lookup = func(name string) (string, bool) {
		v, ok := st.hdr.Get(name)
		return string(v), ok
	}
	st.tlsFn = func(name string) (string, bool) { return tlsFact(st.tls, st.sub, name) }
	return st
}}

// tlsFact is a fact of a TLS session for route matching (config.Match.TLS); subject is the
// verified client certificate's, rendered once per connection ("" without one). The server
// name is lower-cased (names are case-insensitive, and certificates and hosts are chosen
// so): ToLower returns a name already in lower case as it is, without allocating.
func tlsFact(st *tls.ConnectionState, subject, name string) (string, bool) {
	switch name {
	case config.TLSMatchSNI:
		return strings.ToLower(st.ServerName), st.ServerName != ""
	case config.TLSMatchVersion:
		return tls.VersionName(st.Version), true
	case config.TLSMatchClientSubject:
		return subject, subject != ""
	}
	return "", false
}

// newReqState takes a reqState from the pool, set up for ex's request.
func newReqState(ex server.Served) *reqState {
	st := reqStates.Get().(*reqState)
	req := ex.Request()
	st.hdr = &req.Header
	// The strings alias the request's own buffer: nothing keeps them past this request.
	st.in = router.Input{
		Method: unsafeString(req.Method),
		Host:   unsafeString(req.Host),
		Path:   unsafeString(req.Path),
		Query:  unsafeString(req.Query),
		Header: st.lookup,
	}
	if st.tls = ex.TLS(); st.tls != nil {
		st.sub = ex.ClientSubject()
		st.in.TLS = st.tlsFn
	}
	return st
}

func (st *reqState) release() {
	st.rec = proxy.Record{}
	st.in = router.Input{}
	st.hdr, st.tls, st.sub = nil, nil, ""
	st.client.end()
	st.trace.end()
	reqStates.Put(st)
}

// unsafeString returns b as a string without copying. The caller must not let the string
// outlive b's contents.
func unsafeString(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }
