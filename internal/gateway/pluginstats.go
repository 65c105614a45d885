package gateway

import (
	"sluice/internal/metrics"
	"sluice/internal/plugin"
)

// pluginStats is the metrics' plugin stats source: the stats of the serving generation's
// plugin instances (JWKS fetches, forward-auth outcomes).
func (g *Gateway) pluginStats() []metrics.PluginStat {
	gen := g.cur.Load()
	if gen == nil {
		return nil
	}
	var out []metrics.PluginStat
	gen.Plugins.Stats(func(name, place string, st plugin.Stat) {
		out = append(out, metrics.PluginStat{Plugin: name, Place: place, Key: st.Key, Label: st.Label, Value: st.Value})
	})
	return out
}
