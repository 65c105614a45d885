package plugin_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"

	"sluice/internal/plugin"
)

// closer is a test plugin that records its place, its context and whether it was closed.
type closer struct {
	place  string
	ctx    context.Context
	closed bool
}

func (c *closer) Request(*plugin.Request) error { return nil }
func (c *closer) Close() error                  { c.closed = true; return nil }

var (
	closersMu sync.Mutex
	closers   []*closer
)

func init() {
	plugin.Register(plugin.Kind{Name: "t-closer", Stage: plugin.StageTransform, New: func(b *plugin.Build) (any, error) {
		c := &closer{place: "global", ctx: b.Context()}
		switch {
		case b.RouteID != "":
			c.place = "route " + b.RouteID
		case b.UpstreamID != "":
			c.place = "upstream " + b.UpstreamID
		}
		closersMu.Lock()
		closers = append(closers, c)
		closersMu.Unlock()
		return c, nil
	}})
}

const updateConfig = `
listeners: [{address: "127.0.0.1:0"}]
plugins: [{name: t-closer}]
upstreams:
  - {id: u1, targets: [{address: "127.0.0.1:1"}], plugins: [{name: t-closer}]}
  - {id: u2, targets: [{address: "127.0.0.1:2"}], plugins: [{name: t-closer}]}
routes:
  - {id: a, match: {path_prefix: /a}, upstream: u1, plugins: [{name: t-closer}]}
  - {id: b, match: {path_prefix: /b}, upstream: u2, plugins: [{name: t-closer}]}
  - {id: c, match: {path_prefix: /c}, upstream: u1, plugins: [{name: t-closer}]}
`

// TestUpdateKeepsUntouched: Update shares the global instances, those of an untouched
// upstream and the chains and own instances of untouched routes on it with the set before;
// the changed upstream and the routes on it are built anew. Closing the set before closes
// (and cancels the context of) only what the new set did not take; closing the new set
// closes the rest.
func TestUpdateKeepsUntouched(t *testing.T) {
	closersMu.Lock()
	closers = nil
	closersMu.Unlock()
	cfg := parse(t, updateConfig)
	old, err := plugin.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	built := len(closers)
	next := parse(t, updateConfig) // u2 changed (as if), and so is route b on it
	changedUp := func(id string) bool { return id == "u2" }
	oldIndex := func(i int) int {
		if next.Routes[i].Upstream == "u2" {
			return -1
		}
		return i
	}
	ns, err := plugin.Update(old, next, slog.New(slog.DiscardHandler), changedUp, oldIndex)
	if err != nil {
		t.Fatal(err)
	}
	if ns.Chain(0) != old.Chain(0) || ns.Chain(2) != old.Chain(2) || ns.Chain(1) == old.Chain(1) {
		t.Error("the untouched routes' chains were built again, or the changed route's was kept")
	}
	var fresh []string
	for _, c := range closers[built:] {
		fresh = append(fresh, c.place)
	}
	if len(fresh) != 2 || fresh[0] != "upstream u2" || fresh[1] != "route b" {
		t.Errorf("Update built %v, want the changed upstream's and route b's instances only", fresh)
	}
	old.Close()
	for _, c := range closers[:built] {
		gone := c.place == "upstream u2" || c.place == "route b"
		if c.closed != gone || (c.ctx.Err() != nil) != gone {
			t.Errorf("%s after the old set closed: closed %v, context done %v; want %v", c.place, c.closed, c.ctx.Err() != nil, gone)
		}
	}
	ns.Close()
	for _, c := range closers {
		if !c.closed || c.ctx.Err() == nil {
			t.Errorf("%s stays open after every set that held it closed (closed %v, ctx %v)", c.place, c.closed, c.ctx.Err())
		}
	}
}
