package metrics

import "github.com/prometheus/client_golang/prometheus"

// Names of the plugins' own metrics, read at scrape time from the serving config's plugin
// instances (plugin.StatsReporter). docs/metrics.md documents each.
const (
	nameJWKSFetches       = "sluice_jwks_fetches_total"
	nameJWKSUnknownKID    = "sluice_jwks_unknown_kid_refreshes_total"
	nameJWKSKeys          = "sluice_jwks_keys"
	nameForwardAuthChecks = "sluice_forward_auth_checks_total"
	nameSubFilter         = "sluice_sub_filter_total"
	nameFaultInjections   = "sluice_fault_injections_total"
	nameCompressResponses = "sluice_compress_responses_total"
	nameCompressSkipped   = "sluice_compress_skipped_total"
	nameCompressIn        = "sluice_compress_in_bytes_total"
	nameCompressOut       = "sluice_compress_out_bytes_total"
)

// PluginStat is one plugin instance's stat: the plugin, its place (route id,
// "upstream:<id>" or "global"), the stat's key and label, and its value.
type PluginStat struct {
	Plugin, Place, Key, Label string
	Value                     float64
}

// PluginStatsSource returns the stats of the serving config's plugins; it is called once per
// scrape.
type PluginStatsSource func() []PluginStat

// pluginStat is how one stat key becomes a metric.
type pluginStat struct {
	desc  *prometheus.Desc
	gauge bool
}

var pluginLabels = []string{"plugin", "place"}

// pluginStats maps the plugins' stat keys to their metrics.
var pluginStats = map[string]pluginStat{
	"jwks_fetches": {desc: prometheus.NewDesc(nameJWKSFetches,
		"Fetches of a jwt-auth JWKS, by result (success, not_modified, failure: the last good key set is kept).",
		append(pluginLabels, "result"), nil)},
	"jwks_unknown_kid": {desc: prometheus.NewDesc(nameJWKSUnknownKID,
		"JWKS refreshes asked for by tokens with an unknown kid, by result (fetched, or rate_limited: refused, at most one per min_refresh).",
		append(pluginLabels, "result"), nil)},
	"jwks_keys": {gauge: true, desc: prometheus.NewDesc(nameJWKSKeys,
		"Keys in a jwt-auth JWKS's current set (0: none loaded yet).", pluginLabels, nil)},
	"forward_auth_checks": {desc: prometheus.NewDesc(nameForwardAuthChecks,
		"forward-auth checks, by outcome (allowed, denied, unavailable, timeout, canceled).",
		append(pluginLabels, "outcome"), nil)},
	"sub_filter": {desc: prometheus.NewDesc(nameSubFilter,
		"sub-filter work, by event (response: a response body rewritten; replacement: one occurrence replaced).",
		append(pluginLabels, "event"), nil)},
	"fault_injection": {desc: prometheus.NewDesc(nameFaultInjections,
		"Faults injected by fault-injection, by kind (delay, abort).",
		append(pluginLabels, "kind"), nil)},
	"compress_responses": {desc: prometheus.NewDesc(nameCompressResponses,
		"Responses compressed by the compress plugin, by encoding (gzip, br, zstd).",
		append(pluginLabels, "encoding"), nil)},
	"compress_skipped": {desc: prometheus.NewDesc(nameCompressSkipped,
		"Responses the compress plugin left as they were, by reason (not_accepted, type, too_small, encoded, partial, no_transform, streaming).",
		append(pluginLabels, "reason"), nil)},
	"compress_in_bytes": {desc: prometheus.NewDesc(nameCompressIn,
		"Response body bytes the compress plugin took in, by encoding.",
		append(pluginLabels, "encoding"), nil)},
	"compress_out_bytes": {desc: prometheus.NewDesc(nameCompressOut,
		"Compressed response body bytes the compress plugin sent, by encoding.",
		append(pluginLabels, "encoding"), nil)},
}

// pluginStatsCollector turns plugin stats into metrics at scrape time.
type pluginStatsCollector struct{ src PluginStatsSource }

func (c *pluginStatsCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, s := range pluginStats {
		ch <- s.desc
	}
}

func (c *pluginStatsCollector) Collect(ch chan<- prometheus.Metric) {
	for _, st := range c.src() {
		s, ok := pluginStats[st.Key]
		if !ok {
			continue
		}
		typ, labels := prometheus.CounterValue, []string{st.Plugin, st.Place}
		if s.gauge {
			typ = prometheus.GaugeValue
		} else {
			labels = append(labels, st.Label)
		}
		ch <- prometheus.MustNewConstMetric(s.desc, typ, st.Value, labels...)
	}
}

// RegisterPluginStats makes every scrape read the plugins' stats from src.
func (m *Metrics) RegisterPluginStats(src PluginStatsSource) {
	m.reg.MustRegister(&pluginStatsCollector{src: src})
}

// KnownPluginStat reports whether key is a plugin stat with a metric (for tests).
func KnownPluginStat(key string) bool {
	_, ok := pluginStats[key]
	return ok
}
