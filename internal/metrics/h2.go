package metrics

import "github.com/prometheus/client_golang/prometheus"

// HTTP/2 downstream metric names.
const (
	nameH2Conns     = "sluice_http2_connections_total"
	nameH2GoAways   = "sluice_http2_goaways_sent_total"
	nameH2Limits    = "sluice_http2_limit_hits_total"
	nameH2ProtoErrs = "sluice_http2_protocol_errors_total"
)

// h2Metrics are the HTTP/2 downstream counters (server.H2Observer).
type h2Metrics struct {
	conns, goAways, limits, errs *prometheus.CounterVec
}

func (m *Metrics) registerH2() {
	m.h2.conns = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameH2Conns,
		Help: "HTTP/2 client connections, by listener and transport (h2: over TLS by ALPN; h2c: prior knowledge over plain TCP)."},
		[]string{"listener", "transport"})
	m.h2.goAways = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameH2GoAways,
		Help: "GOAWAY frames sent to HTTP/2 clients, by listener and error code (NO_ERROR: a drain or an idle close; ENHANCE_YOUR_CALM: a limit; PROTOCOL_ERROR and others: the client broke the protocol)."},
		[]string{"listener", "code"})
	m.h2.limits = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameH2Limits,
		Help: "HTTP/2 clients that passed a limit, by listener and limit (rapid_reset, control_frame_flood, empty_frame_flood, continuation_flood: the connection is closed with GOAWAY ENHANCE_YOUR_CALM; header_list_too_large: the stream is answered 431)."},
		[]string{"listener", "limit"})
	m.h2.errs = prometheus.NewCounterVec(prometheus.CounterOpts{Name: nameH2ProtoErrs,
		Help: "HTTP/2 protocol errors found on client connections, by listener and token (scope_CODE_what: conn_ errors close the connection with a GOAWAY, stream_ errors reset the stream)."},
		[]string{"listener", "error"})
	m.reg.MustRegister(m.h2.conns, m.h2.goAways, m.h2.limits, m.h2.errs)
}

// H2Conn counts an HTTP/2 client connection.
func (m *Metrics) H2Conn(listener string, tls bool) {
	t := "h2c"
	if tls {
		t = "h2"
	}
	m.h2.conns.WithLabelValues(listener, t).Inc()
}

// H2GoAway counts a GOAWAY sent to a client.
func (m *Metrics) H2GoAway(listener, code string) { m.h2.goAways.WithLabelValues(listener, code).Inc() }

// H2Limit counts a client connection closed for passing a limit.
func (m *Metrics) H2Limit(listener, limit string) { m.h2.limits.WithLabelValues(listener, limit).Inc() }

// H2Error counts a protocol error found on a client connection.
func (m *Metrics) H2Error(listener, token string) { m.h2.errs.WithLabelValues(listener, token).Inc() }
