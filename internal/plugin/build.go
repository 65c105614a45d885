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

// Context is canceled when the config generation that built the instance is retired:
// background goroutines (refreshers) exit on it.
func (b *Build) Context() context.Context { return b.ctx }

// Log is the gateway's logger, with the plugin's name.
func (b *Build) Log() *slog.Logger { return b.log }

// Set is the plugins of one config: a chain per route, the consumers, and what to close when
// the config is retired. It is immutable once built and safe for concurrent use.
type Set struct {
	// Consumers are the config's consumers, in config order.
	Consumers []*Consumer

	chains  []*Chain // by route index; nil for a route without plugins
	closers []Closer
	stats   []placedStats
	cancel  context.CancelFunc
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
	s.cancel()
	for _, c := range s.closers {
		c.Close()
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
	ctx, cancel := context.WithCancel(context.Background())
	s := &Set{cancel: cancel}
	consumers, errs := buildConsumers(cfg)
	s.Consumers = consumers
	b := builder{cfg: cfg, s: s, ctx: ctx, log: log, consumers: consumers}

	global := b.list("plugins", "", "", cfg.Plugins, 0, &errs)
	ups := map[string][]placed{}
	for i, u := range cfg.Upstreams {
		ups[u.ID] = b.list(fmt.Sprintf("upstreams[%d].plugins", i), "", u.ID, u.Plugins, len(global), &errs)
	}
	s.chains = make([]*Chain, len(cfg.Routes))
	for i, r := range cfg.Routes {
		up := ups[r.Upstream]
		path := fmt.Sprintf("routes[%d].plugins", i)
		n := len(global) + len(up) + len(r.Plugins)
		if n > MaxSlots {
			errs = append(errs, config.Node{File: cfg.File, Path: path, Context: fmt.Sprintf("route %q: ", r.ID)}.
				Errorf("", "%d plugins apply to this route (global, upstream and route): at most %d", n, MaxSlots))
			continue
		}
		own := b.list(path, r.ID, "", r.Plugins, len(global)+len(up), &errs)
		if n == 0 {
			continue
		}
		s.chains[i] = newChain(r.ID, slices.Concat(global, up, own))
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
	ctx       context.Context
	log       *slog.Logger
	consumers []*Consumer
}

// list builds the instances of one place's plugin list; their slots start at first.
func (b *builder) list(path, routeID, upstreamID string, list []config.Plugin, first int, errs *[]error) []placed {
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
			slot: Slot(first + len(out)), consumers: b.consumers, ctx: b.ctx,
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
			b.s.closers = append(b.s.closers, c)
		}
		b.s.addStats(pc.Name, routeID, upstreamID, f)
		out = append(out, placed{name: pc.Name, kind: k, f: f})
	}
	return out
}
