package metrics

import "github.com/prometheus/client_golang/prometheus"

// Tracing metric names.
const (
	nameTracingExported = "sluice_tracing_spans_exported_total"
	nameTracingDropped  = "sluice_tracing_spans_dropped_total"
)

// tracingMetrics count what became of recorded spans (tracing.Observer).
type tracingMetrics struct {
	exported prometheus.Counter
	dropped  *prometheus.CounterVec
}

func (m *Metrics) registerTracing() {
	m.tracing.exported = prometheus.NewCounter(prometheus.CounterOpts{Name: nameTracingExported,
		Help: "Spans the OTLP collector accepted."})
	m.tracing.dropped = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameTracingDropped,
		Help: "Spans of recorded requests that were not exported, by reason (queue_full: the export queue was full, the collector being slow or down; export_failed: the collector refused a batch or did not answer within tracing.timeout; shutdown: still queued at shutdown)."},
		[]string{"reason"})
	for _, r := range []string{"queue_full", "export_failed", "shutdown"} {
		m.tracing.dropped.WithLabelValues(r)
	}
	m.reg.MustRegister(m.tracing.exported, m.tracing.dropped)
}

// SpansExported counts spans the collector accepted.
func (m *Metrics) SpansExported(n int) { m.tracing.exported.Add(float64(n)) }

// SpansDropped counts spans that were not exported.
func (m *Metrics) SpansDropped(reason string, n int) {
	m.tracing.dropped.WithLabelValues(reason).Add(float64(n))
}
