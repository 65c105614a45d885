package metrics

import "github.com/prometheus/client_golang/prometheus"

const (
	nameAccessLogLines  = "sluice_access_log_lines_total"
	nameAccessLogErrors = "sluice_access_log_write_errors_total"
)

var (
	descAccessLogLines = prometheus.NewDesc(nameAccessLogLines,
		"Access log lines, by result: written (whole, to the destination) or dropped (a failed write, or logged after shutdown).",
		[]string{"result"}, nil)
	descAccessLogErrors = prometheus.NewDesc(nameAccessLogErrors,
		"Writes to the access log destination that failed (a full disk, a closed pipe); the error log says why.", nil, nil)
)

// AccessLogCounts are the access log's counts since start.
type AccessLogCounts struct{ Written, Dropped, WriteErrors uint64 }

// WatchAccessLog registers the access log's counts, read from src at scrape time: the
// request path does no metrics work for them.
func (m *Metrics) WatchAccessLog(src func() AccessLogCounts) {
	m.reg.MustRegister(accessLogCollector(src))
}

type accessLogCollector func() AccessLogCounts

func (c accessLogCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descAccessLogLines
	ch <- descAccessLogErrors
}

func (c accessLogCollector) Collect(ch chan<- prometheus.Metric) {
	n := c()
	ch <- prometheus.MustNewConstMetric(descAccessLogLines, prometheus.CounterValue, float64(n.Written), "written")
	ch <- prometheus.MustNewConstMetric(descAccessLogLines, prometheus.CounterValue, float64(n.Dropped), "dropped")
	ch <- prometheus.MustNewConstMetric(descAccessLogErrors, prometheus.CounterValue, float64(n.WriteErrors))
}
