package proxy

import (
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"sluice/internal/config"
	"sluice/internal/upstream"
)

// Host header modes of a route.
const (
	HostClient = "client"
	HostTarget = "target"
	HostFixed  = "fixed"
)

// Route is the runtime form of a config route: where to forward and how to rewrite.
type Route struct {
	ID           string
	Upstream     *upstream.Upstream
	Connect      time.Duration
	Read         time.Duration
	Write        time.Duration
	MaxBodyBytes int64

	connectOverride bool // the route sets its own connect timeout
	retry           retryPolicy
	tunnel          tunnelPolicy
	tunnels         routeTunnels
	mirror          *Mirror // nil: none (mirror.go)
	grpcWeb         bool    // translate grpc-web to gRPC (grpcweb.go)

	// budget is the upstream's retry budget, looked up on the route's first request
	// (Proxy.routeBudget), so that a request does not look it up by the upstream's id.
	budget atomic.Pointer[budget]

	stripPrefix string
	addPrefix   string
	pathRe      *regexp.Regexp
	pathRepl    string
	hostMode    string
	hostValue   string
	setHeaders  []kv
	addHeaders  []kv
	// skip names the client fields not copied upstream: those the gateway writes itself
	// (skipHeader) and those the route removes or replaces (compared case-insensitively).
	skip []string
}

type kv struct{ name, value string }

// NewRoute builds a Route for r forwarding to u (whose config is uc).
func NewRoute(r config.Route, uc config.Upstream, u *upstream.Upstream) (*Route, error) {
	t := r.EffectiveTimeouts(uc)
	rt := &Route{
		ID: r.ID, Upstream: u,
		Connect: t.Connect.D(), Read: t.Read.D(), Write: t.Write.D(),
		MaxBodyBytes: r.MaxBodyBytes,
		stripPrefix:  r.Rewrite.StripPrefix, addPrefix: r.Rewrite.AddPrefix,
		pathRepl: r.Rewrite.PathReplacement, hostMode: r.Rewrite.Host, hostValue: r.Rewrite.HostValue,
		skip: slices.Clone(skipHeader), grpcWeb: r.GRPCWeb,
	}
	rt.retry = newRetryPolicy(r.EffectiveRetry(uc))
	rt.tunnel = newTunnelPolicy(r.Tunnel)
	rt.connectOverride = r.Timeouts.Connect > 0 && r.Timeouts.Connect != uc.Timeouts.Connect
	if rt.hostMode == "" {
		rt.hostMode = HostClient
	}
	if r.Rewrite.PathRegex != "" {
		re, err := regexp.Compile(r.Rewrite.PathRegex)
		if err != nil {
			return nil, fmt.Errorf("route %q: rewrite.path_regex: %w", r.ID, err)
		}
		rt.pathRe = re
	}
	rt.skip = append(rt.skip, r.Rewrite.RemoveHeaders...)
	rt.setHeaders = sortedKV(r.Rewrite.SetHeaders)
	for _, h := range rt.setHeaders {
		rt.skip = append(rt.skip, h.name)
	}
	rt.addHeaders = sortedKV(r.Rewrite.AddHeaders)
	return rt, nil
}

func sortedKV(m map[string]string) []kv {
	out := make([]kv, 0, len(m))
	for k, v := range m {
		out = append(out, kv{k, v})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].name < out[j].name })
	return out
}

// rewritePath applies the route's path rewrites to path (the query is kept apart).
func (rt *Route) rewritePath(path string) string {
	if rt.stripPrefix != "" && strings.HasPrefix(path, rt.stripPrefix) {
		path = path[len(rt.stripPrefix):]
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
	}
	if rt.addPrefix != "" {
		path = strings.TrimSuffix(rt.addPrefix, "/") + path
	}
	if rt.pathRe != nil {
		path = rt.pathRe.ReplaceAllString(path, rt.pathRepl)
		if path == "" || path[0] != '/' {
			path = "/" + path
		}
	}
	return path
}

// rewrites reports whether the route changes the path at all.
func (rt *Route) rewrites() bool {
	return rt.stripPrefix != "" || rt.addPrefix != "" || rt.pathRe != nil
}
