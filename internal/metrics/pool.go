package metrics

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/connpool"
	"sluice/internal/h2pool"
	"sluice/internal/reason"
)

// TargetPool is one upstream target and its pool state, as read at scrape time.
type TargetPool struct {
	Upstream string
	Target   string
	// InFlight is the number of requests being served by the target.
	InFlight int64
	// Health is the target's health state: healthy, unhealthy, ejected or unknown.
	Health string
	Pool   connpool.Snapshot
	// H2 is the target's HTTP/2 pool (protocol h2, h2c); nil for HTTP/1.1.
	H2 *h2pool.Snapshot
}

// PoolSource returns the pools of the serving config; it is called once per scrape.
type PoolSource func() []TargetPool

// poolCollector turns pool snapshots into metrics at scrape time, so the data path does no
// metrics work for pools. Every metric is labelled {upstream, target}.
type poolCollector struct {
	pools PoolSource
}

var (
	poolLabels = []string{"upstream", "target"}

	descConns = prometheus.NewDesc(namePoolConns,
		"Open connections to the target, by state (idle or in_use); their sum is the open connections.",
		append(poolLabels, "state"), nil)
	descOpened = prometheus.NewDesc(namePoolOpened,
		"Connections dialed to the target.", poolLabels, nil)
	descClosed = prometheus.NewDesc(namePoolClosed,
		"Connections to the target closed, by reason (see docs/metrics.md).", append(poolLabels, "reason"), nil)
	descReuses = prometheus.NewDesc(namePoolReuses,
		"Requests sent on a pooled (reused) connection.", poolLabels, nil)
	descStale = prometheus.NewDesc(namePoolStaleCaught,
		"Idle connections found dead (FIN, RST or stray bytes) by the reuse check before a request was written on them.", poolLabels, nil)
	descResetOnReuse = prometheus.NewDesc(namePoolResetOnReuse,
		"Requests whose reused connection failed before any response byte (the stale-connection race the pool did not catch).", poolLabels, nil)
	descLearned = prometheus.NewDesc(namePoolLearnedIdle,
		"The backend idle timeout learned for the target (0: none), by source: header, observed, failure or none.", append(poolLabels, "source"), nil)
	descProvisional = prometheus.NewDesc(namePoolProvisional,
		"The idle age of a reset on a reused connection to the target that no second event confirmed yet (0: none): it bounds non-idempotent requests as a learned timeout would, not the others.", poolLabels, nil)
	descEffective = prometheus.NewDesc(namePoolEffectiveIdle,
		"The idle age at which pooled connections to the target are retired (0: no reuse).", poolLabels, nil)
	descReuseFactor = prometheus.NewDesc(namePoolReuseFactor,
		"The self-healing reuse window factor of the target, from 0 (no reuse) to 1 (full window).", poolLabels, nil)
	descWaiting = prometheus.NewDesc(namePoolWaiting,
		"Requests waiting now for a connection to the target (max_conns reached).", poolLabels, nil)
	descQueueWaits = prometheus.NewDesc(namePoolQueueWaits,
		"Requests that had to wait for a connection to the target.", poolLabels, nil)
	descQueueFull = prometheus.NewDesc(namePoolQueueFull,
		"Requests refused because the target's wait queue was full.", poolLabels, nil)
	descQueueTimeouts = prometheus.NewDesc(namePoolQueueTimeouts,
		"Requests that gave up waiting for a connection to the target.", poolLabels, nil)
	descDialErrors = prometheus.NewDesc(namePoolDialErrors,
		"Failed dials to the target (refused, unreachable, timed out).", poolLabels, nil)
	descInFlight = prometheus.NewDesc(namePoolInFlight,
		"Requests being served by the target now.", poolLabels, nil)
	descHealth = prometheus.NewDesc(nameTargetHealth,
		"1 for the target's current health state (healthy, unhealthy, ejected, unknown).",
		append(poolLabels, "state"), nil)
	descTLSHandshakes = prometheus.NewDesc(namePoolTLSHandshakes,
		"TLS handshakes of new connections to the target (upstreams with TLS only), by whether a session was resumed.",
		append(poolLabels, "resumed"), nil)
	descPathConnects = prometheus.NewDesc(namePoolPathConnects,
		"Requests that waited for a connect to the target of their own (no pooled or preconnected connection fit).", poolLabels, nil)
	descPreconnects = prometheus.NewDesc(namePoolPreconnects,
		"Connections to the target opened ahead of a request, by result: used (a request took it), wasted (retired unused), failed (the connect failed).",
		append(poolLabels, "result"), nil)
	descReuseRatio = prometheus.NewDesc(namePoolReuseRatio,
		"Share of the target's requests since the pool was created that found a pooled or preconnected connection (0 to 1).", poolLabels, nil)
	descConfident = prometheus.NewDesc(namePoolConfident,
		"1 when the target's observed idle closes pin its idle timeout down (reuse up to close age minus margin), else 0.", poolLabels, nil)
	descBeyond = prometheus.NewDesc(namePoolBeyond,
		"1 when the target's observed idle closes proved its advertised Keep-Alive timeout conservative, so that the pool uses the observed close age instead, else 0.", poolLabels, nil)
	descTLSErrors = prometheus.NewDesc(namePoolTLSErrors,
		"Failed TLS handshakes with the target (upstreams with TLS only), by reason code: upstream_tls_certificate or upstream_tls_handshake.",
		append(poolLabels, "reason"), nil)
)

func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descConns, descOpened, descClosed, descReuses, descStale,
		descResetOnReuse, descLearned, descProvisional, descEffective, descReuseFactor, descWaiting, descQueueWaits,
		descQueueFull, descQueueTimeouts, descDialErrors, descInFlight, descHealth, descTLSHandshakes, descTLSErrors,
		descPathConnects, descPreconnects, descReuseRatio, descConfident, descBeyond} {
		ch <- d
	}
	for _, d := range h2Descs {
		ch <- d
	}
}

func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for _, tp := range c.pools() {
		collectPool(ch, &tp)
		if tp.H2 != nil {
			collectH2(ch, &tp)
		}
	}
}

func collectPool(ch chan<- prometheus.Metric, tp *TargetPool) {
	s := &tp.Pool
	up, tg := tp.Upstream, tp.Target
	gauge := func(d *prometheus.Desc, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, append([]string{up, tg}, extra...)...)
	}
	counter := func(d *prometheus.Desc, v uint64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), append([]string{up, tg}, extra...)...)
	}
	idle, inUse := 0, 0
	for _, ci := range s.Conns {
		switch ci.State {
		case "idle", "sentinel": // a sentinel is idle too, only never handed out
			idle++
		default:
			inUse++
		}
	}
	gauge(descConns, float64(idle), "idle")
	gauge(descConns, float64(inUse), "in_use")
	k := &s.Counters
	counter(descOpened, k.Opened)
	reasons := make([]string, 0, len(k.ClosedBy))
	for r := range k.ClosedBy {
		reasons = append(reasons, string(r))
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		counter(descClosed, k.ClosedBy[connpool.CloseReason(r)], r)
	}
	counter(descReuses, k.Reused)
	counter(descStale, k.StaleCaught)
	counter(descResetOnReuse, k.ResetOnReuse)
	counter(descPathConnects, k.RequestPathConnects)
	counter(descPreconnects, k.PreconnectsUsed, "used")
	counter(descPreconnects, k.PreconnectsWasted, "wasted")
	counter(descPreconnects, k.PreconnectErrors, "failed")
	gauge(descReuseRatio, k.ReuseRatio())
	confident := 0.0
	if s.Confident {
		confident = 1
	}
	gauge(descConfident, confident)
	beyond := 0.0
	if s.BeyondAdvertised {
		beyond = 1
	}
	gauge(descBeyond, beyond)
	src := s.LearnedSource
	if src == "" || s.Learned <= 0 {
		src = "none"
	}
	gauge(descLearned, s.Learned.Seconds(), src)
	gauge(descProvisional, s.Provisional.Seconds())
	gauge(descEffective, s.EffectiveIdle.Seconds())
	gauge(descReuseFactor, s.ReuseFactor)
	gauge(descWaiting, float64(s.Waiting))
	counter(descQueueWaits, k.QueueWaits)
	counter(descQueueFull, k.QueueFull)
	counter(descQueueTimeouts, k.QueueTimeouts)
	dialErrs := k.DialErrors
	if h := tp.H2; h != nil && h.Protocol != "auto" { // an auto pool's dials are the HTTP/1.1 pool's
		dialErrs += uint64(h.Counters.DialFailures)
	}
	counter(descDialErrors, dialErrs)
	gauge(descInFlight, float64(tp.InFlight))
	if tp.Health != "" {
		gauge(descHealth, 1, tp.Health)
	}
	if s.Options.TLS {
		full, resumed, certErrs, hsErrs := k.TLSFull, k.TLSResumed, k.TLSCertErrors, k.TLSHandshakeErrors
		if h := tp.H2; h != nil { // protocol h2: the HTTP/2 pool dials on its own
			hk := &h.Counters
			full, resumed = full+uint64(hk.TLSFull), resumed+uint64(hk.TLSResumed)
			certErrs, hsErrs = certErrs+uint64(hk.TLSCertErrors), hsErrs+uint64(hk.TLSHandshakeErrors)
		}
		counter(descTLSHandshakes, full, "false")
		counter(descTLSHandshakes, resumed, "true")
		counter(descTLSErrors, certErrs, string(reason.TLSCertificate))
		counter(descTLSErrors, hsErrs, string(reason.TLSHandshake))
	}
}

var _ prometheus.Collector = (*poolCollector)(nil)
