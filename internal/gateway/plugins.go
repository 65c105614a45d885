package gateway

import (
	"log/slog"
	"net/netip"

	"sluice/internal/accesslog"
	"sluice/internal/config"
	"sluice/internal/plugin"
	_ "sluice/internal/plugin/all" // the built-in plugins register themselves
	"sluice/internal/proxy"
	"sluice/internal/realip"
	"sluice/internal/server"
)

// buildPlugins builds the plugin chains and consumers of cfg (internal/plugin) and the
// listeners' trusted proxies.
func (g *Generation) buildPlugins(cfg *config.Config, keep *keeper, log *slog.Logger) error {
	g.trusted = map[string]*realip.Trusted{}
	for _, lc := range cfg.Listeners {
		t, err := realip.New(lc.TrustedProxies)
		if err != nil {
			return err
		}
		g.trusted[lc.Name] = t
	}
	ps, err := keep.plugins(g, log) // incremental.go
	if err != nil {
		return err
	}
	g.Plugins = ps
	return nil
}

// clientState is the per-request real-client state of a reqState: the client address as
// the listener's trusted proxies establish it, the X-Forwarded-For to send, and the plugin
// chain's request. Its buffers are kept across requests.
type clientState struct {
	addr   netip.Addr
	str    string
	fwd    []byte
	strBuf []byte
	pr     plugin.Request
}

func (c *clientState) end() {
	c.pr.End()
	c.addr, c.str = netip.Addr{}, ""
}

// resolveClient finds the request's real client (realip) before routing, for the access
// log, the balancer and the plugins.
func (st *reqState) resolveClient(gen *Generation, ex downstream) {
	c := &st.client
	ip := ex.ClientIP()
	peer, err := netip.ParseAddr(ip)
	if err != nil {
		c.str, c.fwd = ip, append(c.fwd[:0], ip...)
		return
	}
	c.addr, c.fwd = gen.trusted[ex.ListenerName()].Resolve(peer, &ex.Request().Header, c.fwd[:0])
	if c.addr == peer {
		c.str = ip
	} else {
		c.strBuf = c.addr.AppendTo(c.strBuf[:0])
		c.str = unsafeString(c.strBuf)
	}
	st.rec.ClientIP = c.str
}

// begin prepares the plugin request of route idx.
func (st *reqState) begin(gen *Generation, idx int, ex downstream) *plugin.Request {
	c := &st.client
	c.pr.Begin(ex, &st.in, gen.Plugins.Chain(idx), c.addr, c.str, c.fwd)
	return &c.pr
}

// serveChain runs the route's request phase, then (unless a plugin answered) the proxy with
// the chain's per-attempt and response hooks, then the log phase, which runs even when the
// request panicked (a plugin's concurrency slot must be given back).
func (g *Gateway) serveChain(ds proxy.Downstream, rt *proxy.Route, rec *proxy.Record, pr *plugin.Request, ts *traceState) {
	defer endChain(ds, rec, pr)
	if pr.RunRequest() {
		a, _ := pr.AnswerOf()
		rec.Plugin = a.Plugin
		if e := pr.Err(); e != nil {
			rec.Reason, rec.Err = e.Code, e
		} else {
			rec.AnswerReason = a.Code
		}
		g.obs.m.PluginAnswer(rt.ID, a.Plugin, string(a.Code))
		return
	}
	g.proxy.ServeHooks(ds, rt, rec, ts.hooks(pr.Hooks())) // tracing.go
}

// endChain records the consumer and runs the log phase.
func endChain(ds proxy.Downstream, rec *proxy.Record, pr *plugin.Request) {
	if c := pr.Consumer(); c != nil {
		rec.Consumer = c.Name
	}
	status := ds.Status()
	if rec.ClientGone {
		status = 499
	}
	pr.RunLog(status)
}

// clientIP is the client address for the access log: the real one when trusted proxies
// named it.
func clientIP(ex server.Served, rec *proxy.Record) string {
	if rec.ClientIP != "" {
		return rec.ClientIP
	}
	return ex.ClientIP()
}

// logPluginFields adds the consumer, the answering plugin and the reason of its local
// answer (a redirect, a preflight: not errors) to an access log line, those of them in m.
func logPluginFields(ln *accesslog.Line, m config.AccessFieldSet, rec *proxy.Record) {
	if rec.Consumer != "" && m.Has(config.AccessConsumer) {
		ln.Str("consumer", rec.Consumer)
	}
	if rec.Plugin != "" && m.Has(config.AccessPlugin) {
		ln.Str("plugin", rec.Plugin)
	}
	if rec.Reason == "" && rec.AnswerReason != "" && m.Has(config.AccessReason) {
		ln.Str("reason", string(rec.AnswerReason))
	}
}

// proxyProtocol is the server's PROXY protocol trust check of listener lc, nil when the
// listener does not take the PROXY protocol.
func proxyProtocol(lc config.Listener) func(netip.Addr) bool {
	if !lc.ProxyProtocol {
		return nil
	}
	t, err := realip.New(lc.TrustedProxies)
	if err != nil { // validated by config: not reached
		return func(netip.Addr) bool { return false }
	}
	return t.Contains
}

// CheckPlugins builds the plugins of cfg and throws them away: `sluice validate` reports
// their problems as a reload would.
func CheckPlugins(cfg *config.Config) error {
	ps, err := plugin.New(cfg, slog.New(slog.DiscardHandler))
	ps.Close()
	return err
}

// ProxyHeaderRefused implements server.ProxyHeaderObserver.
func (g *Gateway) ProxyHeaderRefused(listener string, _ error) { g.obs.m.ProxyHeaderRefused(listener) }

var _ server.ProxyHeaderObserver = (*Gateway)(nil)
