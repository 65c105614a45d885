package metrics

import "github.com/prometheus/client_golang/prometheus"

const (
	namePluginAnswers      = "sluice_plugin_answers_total"
	nameProxyHeaderRefused = "sluice_proxy_protocol_refused_total"
)

// pluginMetrics are the plugin chain's and the real-client-IP metrics.
type pluginMetrics struct {
	answers, proxyRefused *prometheus.CounterVec
}

func newPluginMetrics(reg *prometheus.Registry) pluginMetrics {
	pm := pluginMetrics{
		answers: prometheus.NewCounterVec(prometheus.CounterOpts{Name: namePluginAnswers,
			Help: "Requests a plugin answered itself (a 401, 403, 429 or a CORS preflight), by route, plugin and reason code."},
			[]string{"route", "plugin", "reason"}),
		proxyRefused: prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameProxyHeaderRefused,
			Help: "Connections from trusted proxies closed because their PROXY protocol header was missing, malformed or late, by listener."},
			[]string{"listener"}),
	}
	reg.MustRegister(pm.answers, pm.proxyRefused)
	return pm
}

// ProxyHeaderRefused counts a connection closed for its PROXY protocol header.
func (m *Metrics) ProxyHeaderRefused(listener string) {
	m.plugins.proxyRefused.WithLabelValues(listener).Inc()
}

// PluginAnswer counts one request that plugin answered itself on route, with reason code.
func (m *Metrics) PluginAnswer(route, plugin, code string) {
	m.plugins.answers.WithLabelValues(route, plugin, code).Inc()
}
