package config

import (
	"fmt"
	"slices"
)

// ParseObjects decodes a document that holds only upstreams and routes (a change to some
// objects of a larger config, such as the objects changed in etcd) exactly as [Parse]
// decodes them inside a whole config: strict fields, explicit zeros, defaults, the same
// messages. It runs every check that concerns one object alone, and none that relates an
// object to another: that a route's upstream exists, that ids and route matches are
// unique. [RouteIndex.Check] runs those for the objects of a change against the rest of
// the config. file is the whole config's file name (relative paths in upstreams' TLS
// settings are resolved against its directory).
func ParseObjects(file string, data []byte) (*Config, error) {
	return parseWith(file, data, (*Config).validateObjects)
}

func (c *Config) validateObjects() problems {
	var p problems
	if len(c.Listeners) > 0 || c.Cluster != nil || len(c.Plugins) > 0 || len(c.Consumers) > 0 {
		p.add("", "only upstreams and routes are parsed alone")
	}
	for i, u := range c.Upstreams {
		b := fmt.Sprintf("upstreams[%d]", i)
		checkID(&p, b+".id", u.ID)
		validateUpstream(&p, b, u)
		checkPluginList(&p, b+".plugins", u.Plugins)
	}
	for i, r := range c.Routes {
		b := fmt.Sprintf("routes[%d]", i)
		checkID(&p, b+".id", r.ID)
		validateRoute(&p, b, r)
		checkPluginList(&p, b+".plugins", r.Plugins)
	}
	return p
}

// RouteIndex holds what is needed to check a change of some routes and upstreams against
// the rest of a valid config without a pass over all its routes: each route's match
// signature (two routes with the same one could not both be chosen), by signature and by
// route id. Build it from a config that passed [Parse], keep it with that config, and
// [RouteIndex.Commit] each change applied on top of it.
type RouteIndex struct {
	bySig map[string]string // match signature -> route id
	sigOf map[string]string // route id -> its match signature
}

// NewRouteIndex indexes the routes of c, a valid config.
func NewRouteIndex(c *Config) *RouteIndex {
	x := &RouteIndex{bySig: make(map[string]string, len(c.Routes)), sigOf: make(map[string]string, len(c.Routes))}
	for _, r := range c.Routes {
		s := matchSignature(r)
		x.bySig[s], x.sigOf[r.ID] = r.ID, s
	}
	return x
}

// Change is a change of some objects of a config: the upstreams and routes added or
// replaced (their new values, each already checked alone by [ParseObjects]), and the ids of
// those removed.
type Change struct {
	Upstreams        []Upstream
	Routes           []*Route
	RemovedRoutes    []string
	RemovedUpstreams []string
}

// Check reports whether next, the config after ch was applied to the config x indexes,
// is valid given that the config before was and that ch's objects pass on their own: every
// route of ch names an upstream of next (a route with a split, a mirror or grpc_web is never
// checked alone), no route of next names a removed upstream (as its upstream, a share or its
// mirror), no upstream of ch with plugins is a share of a split route (split routes do not
// run them), no upstream of ch that does not speak HTTP/2 serves a grpc_web route, and no
// two routes of next have the same match signature. It needs no pass over the routes except
// when upstreams are removed, have plugins or do not speak HTTP/2. On false the caller
// validates next as a whole ([Parse]) for the errors: they are the file's, in the file's
// words.
func (x *RouteIndex) Check(next *Config, ch Change) bool {
	changed := make(map[string]bool, len(ch.Routes)+len(ch.RemovedRoutes))
	for _, id := range ch.RemovedRoutes {
		changed[id] = true
	}
	for _, r := range ch.Routes {
		changed[r.ID] = true
	}
	sigs := make(map[string]bool, len(ch.Routes))
	for _, r := range ch.Routes {
		if r.Split != nil || r.Mirror != nil || r.GRPCWeb {
			return false // their references are checked by the whole validation (split.go, grpcweb.go)
		}
		if next.UpstreamByID(r.Upstream) == nil {
			return false
		}
		s := matchSignature(r)
		if holder, ok := x.bySig[s]; (ok && !changed[holder]) || sigs[s] {
			return false
		}
		sigs[s] = true
	}
	for _, u := range ch.Upstreams {
		// A grpc-web route needs an upstream that speaks HTTP/2 (validateGRPCWeb).
		if !u.UsesH2() && slices.ContainsFunc(next.Routes, func(r *Route) bool { return r.GRPCWeb && r.namesUpstream(u.ID) }) {
			return false
		}
		if len(u.Plugins) == 0 {
			continue
		}
		// A split route does not run upstream plugins, so none of its shares may have any
		// (validateSplit): an unchanged split route must not get a share with plugins.
		if slices.ContainsFunc(next.Routes, func(r *Route) bool { return r.splitsTo(u.ID) }) {
			return false
		}
	}
	for _, u := range ch.RemovedUpstreams {
		if next.UpstreamByID(u) != nil {
			continue // removed and added again in one change
		}
		if slices.ContainsFunc(next.Routes, func(r *Route) bool { return r.namesUpstream(u) }) {
			return false
		}
	}
	return true
}

// Commit records ch (checked by Check, and applied) in x.
func (x *RouteIndex) Commit(ch Change) {
	for _, id := range ch.RemovedRoutes {
		if s, ok := x.sigOf[id]; ok && x.bySig[s] == id {
			delete(x.bySig, s)
		}
		delete(x.sigOf, id)
	}
	for _, r := range ch.Routes {
		if s, ok := x.sigOf[r.ID]; ok && x.bySig[s] == r.ID {
			delete(x.bySig, s)
		}
	}
	for _, r := range ch.Routes {
		s := matchSignature(r)
		x.bySig[s], x.sigOf[r.ID] = r.ID, s
	}
}
