// Package metrics defines every Prometheus metric Sluice exports, on a registry of its own
// (never the global default), and the cheap per-request recording the gateway calls.
//
// The data path pays only for its own counters: label children are resolved once per route
// (see [Route]) and looked up without formatting or allocation. Connection pool state is not
// counted on the data path at all: [poolCollector] reads each pool's Snapshot at scrape time.
// docs/metrics.md lists every metric; keep it in step with the names below.
package metrics

import (
	"net/http"
	"regexp"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"sluice/internal/reason"
)

// Every metric name, in one place. docs/metrics.md documents each.
const (
	nameRequests         = "sluice_requests_total"
	nameGRPCCalls        = "sluice_grpc_calls_total"
	nameRequestDuration  = "sluice_request_duration_seconds"
	nameUpstreamDuration = "sluice_upstream_duration_seconds"
	nameGatewayErrors    = "sluice_gateway_errors_total"
	nameAttempts         = "sluice_upstream_attempts_total"
	nameConfigInfo       = "sluice_config_info"
	nameConfigReloads    = "sluice_config_reloads_total"
	nameRetries          = "sluice_retries_total"
	nameRetryBudget      = "sluice_retry_budget_exhausted_total"
	nameSplicedBytes     = "sluice_spliced_bytes_total"
	namePanics           = "sluice_panics_total"
	nameTLSHandshakes    = "sluice_tls_handshakes_total"
	nameTLSErrors        = "sluice_tls_handshake_errors_total"
	nameTLSConnErrors    = "sluice_tls_connection_errors_total"
	nameCertReloads      = "sluice_tls_certificate_reloads_total"
	nameCertExpiry       = "sluice_tls_certificate_expiry_timestamp_seconds"
	nameACMEEvents       = "sluice_tls_acme_events_total"
	nameTunnelsOpen      = "sluice_tunnels_open"
	nameTunnelsClosed    = "sluice_tunnels_closed_total"
	nameTunnelBytes      = "sluice_tunnel_bytes_total"
	nameDroppedFields    = "sluice_dropped_fields_total"

	namePoolConns         = "sluice_upstream_connections"
	namePoolOpened        = "sluice_upstream_connections_opened_total"
	namePoolClosed        = "sluice_upstream_connections_closed_total"
	namePoolReuses        = "sluice_upstream_connection_reuses_total"
	namePoolStaleCaught   = "sluice_upstream_stale_connections_caught_total"
	namePoolResetOnReuse  = "sluice_upstream_reset_on_reuse_total"
	namePoolLearnedIdle   = "sluice_upstream_learned_idle_timeout_seconds"
	namePoolProvisional   = "sluice_upstream_provisional_idle_timeout_seconds"
	namePoolEffectiveIdle = "sluice_upstream_effective_idle_timeout_seconds"
	namePoolReuseFactor   = "sluice_upstream_reuse_factor"
	namePoolWaiting       = "sluice_upstream_pool_waiting"
	namePoolQueueWaits    = "sluice_upstream_pool_queue_waits_total"
	namePoolQueueFull     = "sluice_upstream_pool_queue_full_total"
	namePoolQueueTimeouts = "sluice_upstream_pool_queue_timeouts_total"
	namePoolDialErrors    = "sluice_upstream_dial_errors_total"
	namePoolInFlight      = "sluice_upstream_in_flight_requests"
	nameTargetHealth      = "sluice_upstream_target_health"
	namePoolTLSHandshakes = "sluice_upstream_tls_handshakes_total"
	namePoolTLSErrors     = "sluice_upstream_tls_handshake_errors_total"
	namePoolPathConnects  = "sluice_upstream_request_path_connects_total"
	namePoolPreconnects   = "sluice_upstream_preconnects_total"
	namePoolReuseRatio    = "sluice_upstream_reuse_ratio"
	namePoolConfident     = "sluice_upstream_learned_idle_timeout_confident"
	namePoolBeyond        = "sluice_upstream_learned_idle_timeout_beyond_advertised"
)

// latencyBuckets span a fast cached response (1 ms) to a long upstream call (60 s).
var latencyBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60}

// Metrics holds the registry and the gateway's own metric vectors. It is safe for
// concurrent use; create one per gateway with [New].
type Metrics struct {
	reg *prometheus.Registry

	requests         *prometheus.CounterVec
	grpcCalls        *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	upstreamDuration *prometheus.HistogramVec
	configInfo       *prometheus.GaugeVec
	reloads          *prometheus.CounterVec
	reloadOK         prometheus.Counter
	reloadFailed     prometheus.Counter
	errors           counterSet // by reason code
	attempts         *prometheus.CounterVec
	splicedIn        prometheus.Counter
	splicedOut       prometheus.Counter
	panics           prometheus.Counter
	tlsHandshakes    *prometheus.CounterVec
	tlsErrors        *prometheus.CounterVec
	tlsConnErrors    *prometheus.CounterVec
	certReloads      *prometheus.CounterVec
	certExpiry       *prometheus.GaugeVec
	certFilesMu      sync.Mutex
	certFiles        map[string]bool // certExpiry's cert_file values
	acmeEvents       *prometheus.CounterVec
	plugins          pluginMetrics // plugins.go
	tunnelsOpen      *prometheus.GaugeVec
	tunnelsClosed    *prometheus.CounterVec
	tunnelBytes      *prometheus.CounterVec
	droppedReqHead   prometheus.Counter
	droppedReqTrail  prometheus.Counter
	droppedRespTrail prometheus.Counter
	h2               h2Metrics      // h2.go
	tracing          tracingMetrics // tracing.go

	mirrored *prometheus.CounterVec // mirror.go

	// Retries (sluice_retries_total{upstream,condition}) and RetryBudgetExhausted
	// (sluice_retry_budget_exhausted_total{upstream}) are registered for the retry policy
	// work, which feeds them; nothing increments them yet.
	Retries              *prometheus.CounterVec
	RetryBudgetExhausted *prometheus.CounterVec

	mu        sync.Mutex
	routes    map[routeKey]*Route
	upstreams map[string]*Upstream
}

type routeKey struct{ route, upstream string }

// goSchedMetrics are the Go runtime metrics exposed beside the client's defaults: how long
// goroutines waited runnable before they ran (go_sched_latencies_seconds) and how long they
// waited for contended locks (go_sync_mutex_wait_total_seconds_total). Under HTTP/2 with many
// streams per connection these two, not the GC, were where a request's tail went on a busy
// machine (docs/design.md, "HTTP/2 streams mode: where the p99 comes from"); both are read
// only at scrape time.
var goSchedMetrics = []collectors.GoRuntimeMetricsRule{
	{Matcher: regexp.MustCompile(`^/sched/latencies:seconds$`)},
	{Matcher: regexp.MustCompile(`^/sync/mutex/wait/total:seconds$`)},
}

// New returns Metrics on a new registry. pools is called at every scrape for the pool
// metrics (nil: none); it must be safe to call concurrently with requests.
func New(pools PoolSource) *Metrics {
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		routes:    map[routeKey]*Route{},
		upstreams: map[string]*Upstream{},
	}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameRequests,
		Help: "Client requests answered, by route, upstream and status class (route and upstream are empty when no route matched; a client that left counts as 4xx)."},
		[]string{"route", "upstream", "code_class"})
	m.grpcCalls = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameGRPCCalls,
		Help: "gRPC and grpc-web calls answered with a grpc-status, by route, upstream and that status's name (OK, UNAVAILABLE...; OTHER for a number outside 0-16): the backend's, or the gateway's for a call it answered or ended itself."},
		[]string{"route", "upstream", "grpc_code"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: nameRequestDuration,
		Help: "Time from the request's first byte being read to the end of the response, by route.", Buckets: latencyBuckets},
		[]string{"route"})
	m.upstreamDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: nameUpstreamDuration,
		Help: "Time spent on upstream attempts of a request (all attempts, including the response body), by route.", Buckets: latencyBuckets},
		[]string{"route"})
	m.errors.vec = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameGatewayErrors,
		Help: "Requests the gateway answered with its own error (or gave up on because the client left), by reason code."},
		[]string{"reason"})
	m.attempts = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameAttempts,
		Help: "Upstream attempts, by upstream and outcome (\"ok\" or a reason code)."},
		[]string{"upstream", "outcome"})
	m.configInfo = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: nameConfigInfo,
		Help: "The config version serving now (the SHA-256 of the config file); always 1."},
		[]string{"version"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameConfigReloads,
		Help: "Config reloads, by result (success or failure; a failed reload keeps the previous config serving)."},
		[]string{"result"})
	m.reloadOK = m.reloads.WithLabelValues("success")
	m.reloadFailed = m.reloads.WithLabelValues("failure")
	m.Retries = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameRetries,
		Help: "Retried upstream attempts, by upstream and the condition that allowed the retry."},
		[]string{"upstream", "condition"})
	m.RetryBudgetExhausted = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameRetryBudget,
		Help: "Retries refused because the upstream's retry budget was spent."},
		[]string{"upstream"})
	spliced := prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameSplicedBytes,
		Help: "Body bytes moved socket to socket with splice(2), without crossing user memory (large Content-Length bodies over plain TCP on Linux), by direction (request: client to upstream; response: upstream to client)."},
		[]string{"direction"})
	m.splicedIn, m.splicedOut = spliced.WithLabelValues("request"), spliced.WithLabelValues("response")
	m.panics = prometheus.NewCounter(prometheus.CounterOpts{Name: namePanics,
		Help: "Requests whose handling panicked (a bug: the error log has the stack and the request id); each was answered 502 internal_error or cut off."})
	m.tlsHandshakes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameTLSHandshakes,
		Help: "Completed TLS handshakes with clients, by listener, TLS version and whether the session was resumed."},
		[]string{"listener", "version", "resumed"})
	m.tlsErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameTLSErrors,
		Help: "Failed TLS handshakes with clients, by listener and reason (timeout, not_tls, unknown_sni, bad_certificate, alert, client_closed, handshake_error)."},
		[]string{"listener", "reason"})
	m.tlsConnErrors = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameTLSConnErrors,
		Help: "Client connections that ended on a TLS error after the handshake (crypto/tls sent an alert and closed), by listener and reason (bad_record_mac, record_overflow, renegotiation, record_flood, alert, protocol_error)."},
		[]string{"listener", "reason"})
	m.certReloads = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameCertReloads,
		Help: "Certificates and client CA bundles reloaded because their files changed, by result (success, or failure: the previous one stays in force)."},
		[]string{"result"})
	m.certExpiry = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: nameCertExpiry,
		Help: "When each served certificate expires (Unix time), by certificate file."},
		[]string{"cert_file"})
	m.tunnelsOpen = prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: nameTunnelsOpen,
		Help: "Tunnels (upgraded connections such as WebSocket) open now, by route and protocol."},
		[]string{"route", "protocol"})
	m.tunnelsClosed = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameTunnelsClosed,
		Help: "Tunnels closed, by route, protocol and reason (client_closed, upstream_closed, idle_timeout, max_lifetime, shutdown, route_changed, error)."},
		[]string{"route", "protocol", "reason"})
	m.tunnelBytes = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameTunnelBytes,
		Help: "Bytes carried by closed tunnels, by route and direction (up: client to upstream; down: upstream to client)."},
		[]string{"route", "direction"})
	dropped := prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameDroppedFields,
		Help: "Header or trailer fields not forwarded, by section (request_header: names with underscores; request_trailer, response_trailer: fields that must not be sent in trailers, the gateway's own, or names with underscores)."},
		[]string{"section"})
	m.droppedReqHead = dropped.WithLabelValues("request_header")
	m.droppedReqTrail = dropped.WithLabelValues("request_trailer")
	m.droppedRespTrail = dropped.WithLabelValues("response_trailer")
	m.reg.MustRegister(dropped)
	m.registerH2()
	m.registerMirror()
	m.registerTracing()
	m.acmeEvents = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameACMEEvents,
		Help: "ACME certificate events, by event (cert_obtained: a certificate ordered or renewed; cert_failed: an order failed, retried with backoff)."},
		[]string{"event"})
	m.plugins = newPluginMetrics(m.reg)
	m.reg.MustRegister(m.tlsHandshakes, m.tlsErrors, m.tlsConnErrors, m.certReloads, m.certExpiry, m.acmeEvents, m.tunnelsOpen, m.tunnelsClosed, m.tunnelBytes)
	m.reg.MustRegister(m.requests, m.grpcCalls, m.duration, m.upstreamDuration, m.errors.vec, m.attempts, spliced, m.panics,
		m.configInfo, m.reloads, m.Retries, m.RetryBudgetExhausted,
		collectors.NewGoCollector(collectors.WithGoCollectorRuntimeMetrics(goSchedMetrics...)),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	if pools != nil {
		m.reg.MustRegister(&poolCollector{pools: pools})
	}
	return m
}

// Spliced counts request and response body bytes moved with splice(2).
func (m *Metrics) Spliced(request, response int64) {
	if request > 0 {
		m.splicedIn.Add(float64(request))
	}
	if response > 0 {
		m.splicedOut.Add(float64(response))
	}
}

// DroppedFields counts request header fields and request and response trailer fields that
// were not forwarded.
func (m *Metrics) DroppedFields(header, request, response int) {
	if header > 0 {
		m.droppedReqHead.Add(float64(header))
	}
	if request > 0 {
		m.droppedReqTrail.Add(float64(request))
	}
	if response > 0 {
		m.droppedRespTrail.Add(float64(response))
	}
}

// Panicked counts a request whose handling panicked.
func (m *Metrics) Panicked() { m.panics.Inc() }

// TLSHandshake counts a completed client handshake.
func (m *Metrics) TLSHandshake(listener, version string, resumed bool) {
	r := "false"
	if resumed {
		r = "true"
	}
	m.tlsHandshakes.WithLabelValues(listener, version, r).Inc()
}

// TLSHandshakeFailed counts a failed client handshake.
func (m *Metrics) TLSHandshakeFailed(listener, reason string) {
	m.tlsErrors.WithLabelValues(listener, reason).Inc()
}

// TLSConnFailed counts a client connection that ended on a TLS error after its handshake.
func (m *Metrics) TLSConnFailed(listener, reason string) {
	m.tlsConnErrors.WithLabelValues(listener, reason).Inc()
}

// CertReloaded counts a certificate reload (certs.Observer).
func (m *Metrics) CertReloaded(_ string, err error) {
	if err != nil {
		m.certReloads.WithLabelValues("failure").Inc()
		return
	}
	m.certReloads.WithLabelValues("success").Inc()
}

// CertExpiry records when a served certificate expires (certs.Observer).
func (m *Metrics) CertExpiry(certFile string, notAfter time.Time) {
	m.certFilesMu.Lock()
	defer m.certFilesMu.Unlock()
	if m.certFiles == nil {
		m.certFiles = map[string]bool{}
	}
	m.certFiles[certFile] = true
	m.certExpiry.WithLabelValues(certFile).Set(float64(notAfter.Unix()))
}

// CertFilesInForce drops the expiry of the certificate files that inForce denies (a reload
// took them out of the config): unlike a removed route's counters, a stale expiry would
// fire the expiry alert for a certificate no longer served.
func (m *Metrics) CertFilesInForce(inForce func(certFile string) bool) {
	m.certFilesMu.Lock()
	defer m.certFilesMu.Unlock()
	for f := range m.certFiles {
		if !inForce(f) {
			m.certExpiry.DeleteLabelValues(f)
			delete(m.certFiles, f)
		}
	}
}

// ACMEEvent counts an ACME certificate event (acme.Observer).
func (m *Metrics) ACMEEvent(event, _ string) { m.acmeEvents.WithLabelValues(event).Inc() }

// TunnelOpened counts a tunnel that opened (proxy.TunnelObserver).
func (m *Metrics) TunnelOpened(route, protocol string) {
	m.tunnelsOpen.WithLabelValues(route, protocol).Inc()
}

// TunnelClosed counts a tunnel that closed and its bytes (proxy.TunnelObserver).
func (m *Metrics) TunnelClosed(route, protocol, why string, up, down int64) {
	m.tunnelsOpen.WithLabelValues(route, protocol).Dec()
	m.tunnelsClosed.WithLabelValues(route, protocol, why).Inc()
	m.tunnelBytes.WithLabelValues(route, "up").Add(float64(up))
	m.tunnelBytes.WithLabelValues(route, "down").Add(float64(down))
}

// Registry returns the registry all Sluice metrics are on.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus exposition formats.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// ConfigApplied records that the config version is serving; reload says whether it
// replaced a running config (the first config of the process is not a reload).
func (m *Metrics) ConfigApplied(version string, reload bool) {
	m.configInfo.Reset()
	m.configInfo.WithLabelValues(version).Set(1)
	if reload {
		m.reloadOK.Inc()
	}
}

// ReloadFailed records a config reload that was refused; the previous config keeps serving.
func (m *Metrics) ReloadFailed() { m.reloadFailed.Inc() }

// GatewayError counts one request answered with the gateway's own error code.
func (m *Metrics) GatewayError(code reason.Code) { m.errors.get(string(code)).Inc() }

// Route returns the pre-resolved series of route and upstream (both "" when no route
// matched). Call it when a config is applied, not per request: it takes a lock.
func (m *Metrics) Route(route, upstream string) *Route {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := routeKey{route, upstream}
	if r, ok := m.routes[k]; ok {
		return r
	}
	r := &Route{m: m, route: route, upstream: upstream,
		duration: m.duration.WithLabelValues(route),
		up:       m.upstreamLocked(upstream),
		grpc:     counterSet{vec: m.grpcCalls, prefix: []string{route, upstream}}}
	if upstream != "" { // unmatched requests never reach an upstream
		r.upstreamDuration = m.upstreamDuration.WithLabelValues(route)
	}
	for c := 2; c <= 5; c++ {
		r.requests[c] = m.requests.WithLabelValues(route, upstream, codeClasses[c])
	}
	m.routes[k] = r
	return r
}

func (m *Metrics) upstreamLocked(id string) *Upstream {
	if u, ok := m.upstreams[id]; ok {
		return u
	}
	u := &Upstream{attempts: counterSet{vec: m.attempts, prefix: []string{id}}}
	if id != "" {
		m.RetryBudgetExhausted.WithLabelValues(id) // present at 0 from the start
	}
	m.upstreams[id] = u
	return u
}

// counterSet caches the children of a counter vector by their last label value. Reads are
// lock-free lookups in an immutable map; a miss copies the map under mu (rare: the set of
// values, such as reason codes, is small and fixed).
type counterSet struct {
	vec    *prometheus.CounterVec
	prefix []string // the label values before the last one
	mu     sync.Mutex
	m      atomic.Pointer[map[string]prometheus.Counter]
}

func (s *counterSet) get(last string) prometheus.Counter {
	if m := s.m.Load(); m != nil {
		if c, ok := (*m)[last]; ok {
			return c
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	old := s.m.Load()
	if old != nil {
		if c, ok := (*old)[last]; ok {
			return c
		}
	}
	next := make(map[string]prometheus.Counter, 8)
	if old != nil {
		for k, v := range *old {
			next[k] = v
		}
	}
	lv := append(append([]string(nil), s.prefix...), last)
	c := s.vec.WithLabelValues(lv...)
	next[last] = c
	s.m.Store(&next)
	return c
}
