package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/ratelimit"
)

const (
	nameLimitDecisions = "sluice_ratelimit_decisions_total"
	nameLimitRedisErrs = "sluice_ratelimit_redis_errors_total"
	nameLimitKeys      = "sluice_ratelimit_keys"
	nameLimitEvictions = "sluice_ratelimit_evictions_total"
)

// Limit is one rate or concurrency limit (a rate-limit or limit-conn plugin instance) and
// its counters, as read at scrape time.
type Limit struct {
	// Plugin is the plugin's name ("rate-limit", "limit-conn"); Name the limit's name.
	Plugin, Name string
	Stats        ratelimit.Stats
}

// LimitSource returns the limits of the serving config; it is called once per scrape. A
// reload builds new limits, whose counters start at 0 (a counter reset to Prometheus).
type LimitSource func() []Limit

var (
	limitLabels        = []string{"plugin", "limit"}
	descLimitDecisions = prometheus.NewDesc(nameLimitDecisions,
		"Decisions of a rate or concurrency limit, by result: admitted, limited, fail_open and fail_closed (Redis failed or was skipped after a failure, and on_redis_error decided).",
		append(limitLabels, "result"), nil)
	descLimitRedisErrs = prometheus.NewDesc(nameLimitRedisErrs,
		"Failed or timed-out Redis calls of a policy: redis limit.", limitLabels, nil)
	descLimitKeys = prometheus.NewDesc(nameLimitKeys,
		"Keys a local limit holds in memory now (at most its max_keys).", limitLabels, nil)
	descLimitEvictions = prometheus.NewDesc(nameLimitEvictions,
		"Keys a local limit forgot to make room for new ones at its max_keys.", limitLabels, nil)
)

type limitCollector struct{ src LimitSource }

func (c limitCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLimitDecisions
	ch <- descLimitRedisErrs
	ch <- descLimitKeys
	ch <- descLimitEvictions
}

func (c limitCollector) Collect(ch chan<- prometheus.Metric) {
	for _, l := range c.src() {
		s := l.Stats
		counter := func(d *prometheus.Desc, v int64, extra ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{l.Plugin, l.Name}, extra...)...)
		}
		counter(descLimitDecisions, s.Admitted-s.FailOpen, "admitted")
		counter(descLimitDecisions, s.Limited-s.FailClosed, "limited")
		counter(descLimitDecisions, s.FailOpen, "fail_open")
		counter(descLimitDecisions, s.FailClosed, "fail_closed")
		counter(descLimitRedisErrs, s.StoreErrors)
		counter(descLimitEvictions, s.Evictions)
		ch <- prometheus.MustNewConstMetric(descLimitKeys, prometheus.GaugeValue, float64(s.Keys), l.Plugin, l.Name)
	}
}

// SetLimitSource registers the rate and concurrency limits' metrics, read from src at each
// scrape. Call it once.
func (m *Metrics) SetLimitSource(src LimitSource) {
	m.reg.MustRegister(limitCollector{src: src})
}
