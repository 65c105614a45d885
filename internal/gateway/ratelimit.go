package gateway

import (
	"sluice/internal/metrics"
	"sluice/internal/ratelimit"
)

// limited is a plugin instance that keeps rate or concurrency limit counters (the
// rate-limit and limit-conn plugins).
type limited interface {
	Name() string
	Stats() ratelimit.Stats
}

// limitStats reads the serving config's limits for the metrics, at scrape time.
func (g *Gateway) limitStats() []metrics.Limit {
	gen := g.cur.Load()
	if gen == nil {
		return nil
	}
	names, insts := gen.Plugins.Instances()
	var out []metrics.Limit
	for i, f := range insts {
		if l, ok := f.(limited); ok {
			out = append(out, metrics.Limit{Plugin: names[i], Name: l.Name(), Stats: l.Stats()})
		}
	}
	return out
}
