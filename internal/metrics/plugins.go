package metrics

import "github.com/prometheus/client_golang/prometheus"

const namePluginAnswers = "sluice_plugin_answers_total"

func newPluginAnswers() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{Name: namePluginAnswers,
		Help: "Requests a plugin answered itself (a 401, 403, 429 or a CORS preflight), by route, plugin and reason code."},
		[]string{"route", "plugin", "reason"})
}

// PluginAnswer counts one request that plugin answered itself on route, with reason code.
func (m *Metrics) PluginAnswer(route, plugin, code string) {
	m.pluginAnswers.WithLabelValues(route, plugin, code).Inc()
}
