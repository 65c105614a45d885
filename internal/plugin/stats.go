package plugin

// Stat is one count a plugin instance reports for metrics beyond its answers (which the
// gateway counts itself): a JWKS refresher's fetches, an auth service's outcomes. Stats are
// read at scrape time, never on the request path.
type Stat struct {
	// Key names the metric; internal/metrics maps each key to its name (docs/metrics.md).
	Key string
	// Label is the value of the metric's own label ("result", "outcome"); "" for none.
	Label string
	// Value is the count (or, for a gauge, the current value).
	Value float64
}

// StatsReporter is implemented by plugin instances that report [Stat]s. PluginStats calls
// emit once per stat; it must not block.
type StatsReporter interface {
	PluginStats(emit func(Stat))
}

// placedStats is a StatsReporter with the plugin's name and place.
type placedStats struct {
	plugin, place string
	r             StatsReporter
}

// Stats calls emit for every stat of every instance of the set that reports some, with the
// plugin's name and its place: the route id, "upstream:<id>" or "global".
func (s *Set) Stats(emit func(plugin, place string, st Stat)) {
	if s == nil {
		return
	}
	for _, u := range s.units {
		for _, p := range u.stats {
			p.r.PluginStats(func(st Stat) { emit(p.plugin, p.place, st) })
		}
	}
}

// addStats keeps f when it reports stats.
func (s *unit) addStats(name, routeID, upstreamID string, f any) {
	r, ok := f.(StatsReporter)
	if !ok {
		return
	}
	place := "global"
	switch {
	case routeID != "":
		place = routeID
	case upstreamID != "":
		place = "upstream:" + upstreamID
	}
	s.stats = append(s.stats, placedStats{plugin: name, place: place, r: r})
}
