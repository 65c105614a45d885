package admin

import (
	"encoding/json"
	"maps"
	"sync"
	"time"

	"sluice/internal/metrics"
)

// The dashboard's rates and percentiles come from a small ring of cumulative totals that a
// ticker on the admin side reads once a second (metrics.Totals: three metric vectors
// collected). The data path does nothing for it, and the cost does not depend on the
// traffic. A view subtracts neighbouring samples: requests/s, errors by reason and the
// latency histogram of each second, from which p50 and p99 are interpolated within the
// histogram's buckets (so they are as coarse as sluice_request_duration_seconds).

const (
	trafficSamples  = 301 // 5 minutes of 1 s intervals
	trafficInterval = time.Second
)

type sample struct {
	at time.Time
	t  metrics.Totals
}

// traffic keeps the ring of samples.
type traffic struct {
	read func() metrics.Totals
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu   sync.Mutex
	ring []sample // oldest first once full; at most trafficSamples
	adds uint64   // samples added so far

	// The encoded view of the ring at adds == encAt: every poll within the same second
	// (several tabs, several pages) gets these bytes instead of a new encoding (~80 KB
	// for a full ring).
	encMu sync.Mutex
	enc   []byte
	encAt uint64
}

func newTraffic(read func() metrics.Totals) *traffic {
	return &traffic{read: read, stop: make(chan struct{}), done: make(chan struct{})}
}

// run samples every interval until close.
func (t *traffic) run(interval time.Duration) {
	defer close(t.done)
	tk := time.NewTicker(interval)
	defer tk.Stop()
	t.add(time.Now())
	for {
		select {
		case <-t.stop:
			return
		case now := <-tk.C:
			t.add(now)
		}
	}
}

func (t *traffic) close() {
	t.once.Do(func() { close(t.stop) })
	<-t.done
}

func (t *traffic) add(now time.Time) {
	s := sample{at: now, t: t.read()}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.ring) == trafficSamples {
		copy(t.ring, t.ring[1:])
		t.ring = t.ring[:trafficSamples-1]
	}
	t.ring = append(t.ring, s)
	t.adds++
}

// encoded returns the view as compact JSON, encoded at most once per sample.
func (t *traffic) encoded() ([]byte, error) {
	t.encMu.Lock()
	defer t.encMu.Unlock()
	t.mu.Lock()
	adds := t.adds
	t.mu.Unlock()
	if t.enc != nil && t.encAt == adds {
		return t.enc, nil
	}
	b, err := json.Marshal(t.view())
	if err != nil {
		return nil, err
	}
	t.enc, t.encAt = append(b, '\n'), adds
	return t.enc, nil
}

// point is one interval of the traffic view.
type point struct {
	Time     time.Time         `json:"time"` // end of the interval
	Seconds  float64           `json:"seconds"`
	Requests uint64            `json:"requests"`
	Rate     float64           `json:"requests_per_second"`
	P50      float64           `json:"p50_seconds"` // 0: no requests in the interval
	P99      float64           `json:"p99_seconds"`
	Errors   map[string]uint64 `json:"errors,omitempty"` // gateway-made errors by reason code; none: omitted
}

// trafficView is /admin/traffic.
type trafficView struct {
	IntervalSeconds float64 `json:"interval_seconds"`
	Points          []point `json:"points"` // oldest first
	// Recent sums the last 10 seconds (or what there is): the overview's headline numbers.
	Recent point `json:"recent"`
	// Routes are requests by route id: the cumulative total and the rate over Recent.
	Routes map[string]routeRate `json:"routes"`
	// ErrorsTotal are the gateway-made errors by reason code since the process started.
	ErrorsTotal map[string]uint64 `json:"errors_total"`
}

type routeRate struct {
	Total uint64  `json:"total"`
	Rate  float64 `json:"requests_per_second"`
}

const recentSamples = 10

// view is the traffic of the ring; with since set, points only for the intervals that end
// after it (a poller that keeps the series asks only for what is new).
func (t *traffic) view(since ...time.Time) trafficView {
	t.mu.Lock()
	ring := append([]sample(nil), t.ring...)
	t.mu.Unlock()
	v := trafficView{IntervalSeconds: trafficInterval.Seconds(), Points: []point{},
		Routes: map[string]routeRate{}, ErrorsTotal: map[string]uint64{}}
	if len(ring) == 0 {
		return v
	}
	for i := 1; i < len(ring); i++ {
		if len(since) > 0 && ring[i].at.UnixMilli() <= since[0].UnixMilli() { // since: in ms
			continue
		}
		v.Points = append(v.Points, between(ring[i-1], ring[i]))
	}
	last := ring[len(ring)-1]
	first := ring[max(0, len(ring)-1-recentSamples)]
	v.Recent = between(first, last)
	span := last.at.Sub(first.at).Seconds()
	for id, n := range last.t.Requests {
		rr := routeRate{Total: n}
		if span > 0 {
			rr.Rate = float64(n-first.t.Requests[id]) / span
		}
		v.Routes[id] = rr
	}
	maps.Copy(v.ErrorsTotal, last.t.Errors)
	return v
}

// between is the traffic from sample a to the later sample b.
func between(a, b sample) point {
	p := point{Time: b.at, Seconds: b.at.Sub(a.at).Seconds()}
	for id, n := range b.t.Requests {
		p.Requests += n - min(n, a.t.Requests[id])
	}
	if p.Seconds > 0 {
		p.Rate = float64(p.Requests) / p.Seconds
	}
	for code, n := range b.t.Errors {
		if d := n - min(n, a.t.Errors[code]); d > 0 {
			if p.Errors == nil {
				p.Errors = map[string]uint64{}
			}
			p.Errors[code] = d
		}
	}
	count := b.t.DurationCount - min(b.t.DurationCount, a.t.DurationCount)
	if count > 0 && len(a.t.Buckets) == len(b.t.Buckets) {
		delta := make([]uint64, len(b.t.Buckets))
		for i := range delta {
			delta[i] = b.t.Buckets[i] - min(b.t.Buckets[i], a.t.Buckets[i])
		}
		p.P50 = quantile(0.50, b.t.Bounds, delta, count)
		p.P99 = quantile(0.99, b.t.Bounds, delta, count)
	}
	return p
}

// quantile interpolates the q-quantile in a cumulative histogram (as Prometheus'
// histogram_quantile does): linearly within the bucket it falls in, the first bucket from
// 0; past the last bound it answers the last bound.
func quantile(q float64, bounds []float64, cum []uint64, count uint64) float64 {
	rank := q * float64(count)
	lower, below := 0.0, 0.0
	for i, ub := range bounds {
		c := float64(cum[i])
		if c >= rank {
			if c == below {
				return ub
			}
			return lower + (ub-lower)*(rank-below)/(c-below)
		}
		lower, below = ub, c
	}
	if len(bounds) == 0 {
		return 0
	}
	return bounds[len(bounds)-1]
}
