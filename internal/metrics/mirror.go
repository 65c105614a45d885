package metrics

import "github.com/prometheus/client_golang/prometheus"

// nameMirrored is the traffic mirroring metric (docs/traffic.md).
const nameMirrored = "sluice_mirror_requests_total"

func (m *Metrics) registerMirror() {
	m.mirrored = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameMirrored,
		Help: "Requests of mirrored routes, by route, mirror upstream and result: the copy's response class (2xx..5xx) or gateway reason code, or why no copy was made (sampled_out, dropped, body_too_large, upgrade)."},
		[]string{"route", "upstream", "result"})
	m.reg.MustRegister(m.mirrored)
}

// Mirrored returns the counter of route's mirror to upstream, by result (proxy.Mirror.Count).
func (m *Metrics) Mirrored(route, upstream string) func(result string) {
	return func(result string) { m.mirrored.WithLabelValues(route, upstream, result).Inc() }
}
