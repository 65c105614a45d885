package plugin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"sluice/internal/config"
)

// Build is what a [Kind]'s New gets to build one instance: its config, its slot, the
// consumers, and the generation's context and logger.
type Build struct {
	// Name is the plugin's name.
	Name string
	// RouteID is the route the instance is attached to; "" for a global or upstream one.
	RouteID string
	// UpstreamID is the upstream the instance is attached to; "" for a global or route one.
	UpstreamID string

	node      config.Node
	slot      Slot
	consumers []*Consumer
	ctx       context.Context
	log       *slog.Logger
}

// Decode decodes the plugin's config strictly into v (a pointer to a struct with yaml tags
// whose defaults are already set); errors name the file:line, the route, the plugin and the
// field.
func (b *Build) Decode(v any) error { return b.node.Decode(v) }

// Errorf returns a config problem with field (a path below config, such as "header" or
// "allow[1]"; "" for the config itself), naming the file:line, the route and the plugin.
func (b *Build) Errorf(field, format string, args ...any) error {
	return b.node.Errorf(field, format, args...)
}

// Slot is the instance's per-request state index ([Request.Slot]).
func (b *Build) Slot() Slot { return b.slot }

// Consumers are the config's consumers, in config order.
func (b *Build) Consumers() []*Consumer { return b.consumers }

// Context is canceled when no config generation holds the instance any more (the one that
// built it, and those that kept it because a change did not touch its place: update.go):
// background goroutines (refreshers) exit on it.
func (b *Build) Context() context.Context { return b.ctx }

// Log is the gateway's logger, with the plugin's name.
func (b *Build) Log() *slog.Logger { return b.log }

// Set is the plugins of one config: a chain per route, the consumers, and what to close when
// the config is retired. It is immutable once built and safe for concurrent use.
type Set struct {
	// Consumers are the config's consumers, in config order.
	Consumers []*Consumer

	chains []*Chain // by route index; nil for a route without plugins
	// The instances, by the place they are written (update.go): a set built by Update
	// shares the units of the places a change did not touch with the set before. A route's
	// own instances belong to its chain (Chain.own): a set has no other per-route array.
	global placedList
	ups    map[string]placedList // by upstream id
	units  []*unit               // every unit the set holds, each once
}

// placedList is the instances of one place with the unit that owns them.
type placedList struct {
	list []placed
	unit *unit
}

// Chain returns the chain of the route at index i of the config's routes, nil when the
// route has no plugins.
func (s *Set) Chain(i int) *Chain {
	if s == nil || i < 0 || i >= len(s.chains) {
		return nil
	}
	return s.chains[i]
}

// Close cancels the instances' context and closes those that are Closers.
func (s *Set) Close() {
	if s == nil {
		return
	}
	for _, u := range s.units {
		u.release()
	}
}

// placed is one built instance with the names of the place it is attached to.
type placed struct {
	name string
	kind Kind
	f    any
}

// New builds the plugins of cfg: its consumers, then each plugin instance, once per place it
// is written (global, upstream, route), and a chain per route: the global instances, the
// route's upstream's, then the route's own. It returns every problem found, each a
// *config.FieldError with file:line naming the route (or upstream), the plugin and the field.
func New(cfg *config.Config, log *slog.Logger) (*Set, error) {
	return build(cfg, log, nil)
}

// build is New; keep, when not nil, takes from the set before what a change did not touch
// (update.go).
func build(cfg *config.Config, log *slog.Logger, keep *keeper) (*Set, error) {
	s := &Set{ups: map[string]placedList{}, chains: make([]*Chain, len(cfg.Routes))}
	var errs []error
	if keep != nil {
		s.Consumers = keep.old.Consumers
	} else {
		s.Consumers, errs = buildConsumers(cfg)
	}
	b := builder{cfg: cfg, s: s, log: log, consumers: s.Consumers}
	if s.global = keep.global(s); s.global.unit == nil {
		s.global = b.list("plugins", "", "", cfg.Plugins, 0, &errs)
	}
	for i, u := range cfg.Upstreams {
		pl := keep.upstream(s, u.ID)
		if pl.unit == nil {
			pl = b.list(fmt.Sprintf("upstreams[%d].plugins", i), "", u.ID, u.Plugins, len(s.global.list), &errs)
		}
		s.ups[u.ID] = pl
	}
	for i := range cfg.Routes {
		r := cfg.Routes[i]
		if keep.route(s, i, r) {
			continue
		}
		up := s.ups[r.Upstream].list
		path := fmt.Sprintf("routes[%d].plugins", i)
		n := len(s.global.list) + len(up) + len(r.Plugins)
		if n > MaxSlots {
			errs = append(errs, config.Node{File: cfg.File, Path: path, Context: fmt.Sprintf("route %q: ", r.ID)}.
				Errorf("", "%d plugins apply to this route (global, upstream and route): at most %d", n, MaxSlots))
			continue
		}
		own := b.list(path, r.ID, "", r.Plugins, len(s.global.list)+len(up), &errs)
		if n == 0 {
			continue
		}
		s.chains[i] = newChain(r.ID, slices.Concat(s.global.list, up, own.list))
		s.chains[i].own = own.unit
	}
	if len(errs) > 0 {
		s.Close()
		return nil, errors.Join(errs...)
	}
	return s, nil
}

type builder struct {
	cfg       *config.Config
	s         *Set
	log       *slog.Logger
	consumers []*Consumer
}

// list builds the instances of one place's plugin list, owned by a new unit of the set;
// their slots start at first.
func (b *builder) list(path, routeID, upstreamID string, list []config.Plugin, first int, errs *[]error) placedList {
	if len(list) == 0 {
		return placedList{}
	}
	u := newUnit()
	b.s.units = append(b.s.units, u)
	var out []placed
	for i, pc := range list {
		where := ""
		switch {
		case routeID != "":
			where = fmt.Sprintf("route %q: ", routeID)
		case upstreamID != "":
			where = fmt.Sprintf("upstream %q: ", upstreamID)
		}
		y := pc.Config
		node := config.Node{File: b.cfg.File, Path: fmt.Sprintf("%s[%d].config", path, i),
			Context: where + "plugin " + pc.Name + ": ", Y: &y, Line: pc.Line}
		k, ok := Lookup(pc.Name)
		if !ok {
			n := config.Node{File: b.cfg.File, Path: fmt.Sprintf("%s[%d].name", path, i), Context: where, Line: pc.Line}
			*errs = append(*errs, n.Errorf("", "unknown plugin %q (known: %v)", pc.Name, Names()))
			continue
		}
		bd := &Build{Name: pc.Name, RouteID: routeID, UpstreamID: upstreamID, node: node,
			slot: Slot(first + len(out)), consumers: b.consumers, ctx: u.ctx,
			log: b.log.With("plugin", pc.Name)}
		f, err := k.New(bd)
		if err != nil {
			*errs = append(*errs, err)
			continue
		}
		if _, ok := f.(RequestFilter); ok && k.Stage == 0 {
			*errs = append(*errs, node.Errorf("", "plugin %s filters requests but registered no stage (a bug)", pc.Name))
			continue
		}
		if c, ok := f.(Closer); ok {
			u.closers = append(u.closers, c)
		}
		u.addStats(pc.Name, routeID, upstreamID, f)
		out = append(out, placed{name: pc.Name, kind: k, f: f})
	}
	return placedList{list: out, unit: u}
}
