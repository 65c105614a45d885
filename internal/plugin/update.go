package plugin

import (
	"context"
	"log/slog"
	"sync/atomic"

	"sluice/internal/config"
)

// unit owns the instances of one place (the global list, an upstream's, a route's own):
// their context and what to close. Every set that holds a unit took a reference on it; the
// last [Set.Close] cancels its context and closes its closers, so instances a change did
// not touch live on in the next set while the set before is retired.
type unit struct {
	ctx     context.Context
	cancel  context.CancelFunc
	closers []Closer
	stats   []placedStats
	refs    atomic.Int32
}

func newUnit() *unit {
	u := &unit{}
	u.ctx, u.cancel = context.WithCancel(context.Background())
	u.refs.Store(1)
	return u
}

// release drops one reference; the last cancels the instances' context and closes them.
func (u *unit) release() {
	if u.refs.Add(-1) != 0 {
		return
	}
	u.cancel()
	for _, c := range u.closers {
		c.Close()
	}
}

// hold takes a reference on the unit of pl for s.
func (s *Set) hold(pl placedList) placedList {
	if pl.unit != nil {
		pl.unit.refs.Add(1)
		s.units = append(s.units, pl.unit)
	}
	return pl
}

// Update builds the plugins of cfg as [New] does, for a cfg that differs from the config
// old was built from only in some upstreams and routes (cluster mode's change): the global
// instances and the consumers are old's; an upstream for which changedUpstream is false
// keeps its instances; a route for which oldIndex gives its index in old's config (the
// route and its upstream untouched; -1 otherwise) keeps its own instances and its chain.
// The rest is built. Kept instances are shared with old (each place's unit is counted), so
// closing old does not close them; they are closed with the last set that holds them.
func Update(old *Set, cfg *config.Config, log *slog.Logger, changedUpstream func(id string) bool, oldIndex func(i int) int) (*Set, error) {
	if old == nil {
		return New(cfg, log)
	}
	return build(cfg, log, &keeper{old: old, changedUpstream: changedUpstream, oldIndex: oldIndex})
}

// keeper takes the places a change did not touch from the set before; a nil keeper keeps
// nothing.
type keeper struct {
	old             *Set
	changedUpstream func(id string) bool
	oldIndex        func(i int) int
	lastUp          string // the upstream route last asked changedUpstream about, and its answer
	lastChanged     bool
}

func (k *keeper) global(s *Set) placedList {
	if k == nil {
		return placedList{}
	}
	return s.hold(k.old.global)
}

func (k *keeper) upstream(s *Set, id string) placedList {
	if k == nil || k.changedUpstream(id) {
		return placedList{}
	}
	return s.hold(k.old.ups[id])
}

// route takes route i's own instances and chain from the set before and reports whether it
// did.
func (k *keeper) route(s *Set, i int, r *config.Route) bool {
	if k == nil {
		return false
	}
	if r.Upstream != k.lastUp || i == 0 {
		k.lastUp, k.lastChanged = r.Upstream, k.changedUpstream(r.Upstream) // routes in a row often share one
	}
	if k.lastChanged {
		return false
	}
	j := k.oldIndex(i)
	if j < 0 || j >= len(k.old.chains) {
		return false
	}
	c := k.old.chains[j]
	if c != nil {
		s.hold(placedList{unit: c.own})
	}
	s.chains[i] = c
	return true
}
