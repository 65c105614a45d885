package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Totals are the cumulative request counters the admin side samples once a second for the
// dashboard's rates and latency percentiles. Reading them collects three metric vectors;
// the data path does nothing for it.
type Totals struct {
	// Requests by route id ("" for requests that matched no route), all status classes.
	Requests map[string]uint64
	// Errors are gateway-made errors by reason code.
	Errors map[string]uint64
	// Bounds are the upper bounds of the request duration buckets in seconds; Buckets the
	// cumulative counts of all routes' durations at or below each bound (the last bucket,
	// +Inf, is DurationCount).
	Bounds        []float64
	Buckets       []uint64
	DurationCount uint64
}

// Totals reads the current cumulative counts.
func (m *Metrics) Totals() Totals {
	t := Totals{Requests: map[string]uint64{}, Errors: map[string]uint64{},
		Bounds: latencyBuckets, Buckets: make([]uint64, len(latencyBuckets))}
	eachMetric(m.requests, func(d *dto.Metric) {
		t.Requests[label(d, "route")] += uint64(d.GetCounter().GetValue())
	})
	eachMetric(m.errors.vec, func(d *dto.Metric) {
		if v := uint64(d.GetCounter().GetValue()); v > 0 {
			t.Errors[label(d, "reason")] += v
		}
	})
	eachMetric(m.duration, func(d *dto.Metric) {
		h := d.GetHistogram()
		t.DurationCount += h.GetSampleCount()
		for i, b := range h.GetBucket() {
			if i < len(t.Buckets) {
				t.Buckets[i] += b.GetCumulativeCount()
			}
		}
	})
	return t
}

// eachMetric collects c and calls f with each metric's value.
func eachMetric(c prometheus.Collector, f func(*dto.Metric)) {
	ch := make(chan prometheus.Metric, 64)
	go func() {
		c.Collect(ch)
		close(ch)
	}()
	for pm := range ch {
		var d dto.Metric
		if pm.Write(&d) == nil {
			f(&d)
		}
	}
}

func label(d *dto.Metric, name string) string {
	for _, l := range d.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}
