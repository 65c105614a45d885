package metrics

import (
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"sluice/internal/h2pool"
)

// Metrics of the HTTP/2 pools of upstreams with protocol h2 or h2c (docs/http2.md).
const (
	nameH2UpConns       = "sluice_upstream_h2_connections"
	nameH2UpStreams     = "sluice_upstream_h2_streams_total"
	nameH2UpUnprocessed = "sluice_upstream_h2_unprocessed_streams_total"
	nameH2UpClosed      = "sluice_upstream_h2_connections_closed_total"
	nameH2UpPings       = "sluice_upstream_h2_pings_total"
	nameH2UpReplace     = "sluice_upstream_h2_replacement_dials_total"
	nameH2UpDraining    = "sluice_upstream_h2_draining_connections"
	nameH2UpWaits       = "sluice_upstream_h2_waits_total"
	// Protocol auto: the target's ALPN answer.
	nameUpNegotiated      = "sluice_upstream_negotiated_protocol"
	nameUpProtocolChanges = "sluice_upstream_protocol_changes_total"
)

var (
	descH2Conns = prometheus.NewDesc(nameH2UpConns,
		"Open HTTP/2 connections to the target.", poolLabels, nil)
	descH2Streams = prometheus.NewDesc(nameH2UpStreams,
		"Streams started on HTTP/2 connections to the target.", poolLabels, nil)
	descH2Unprocessed = prometheus.NewDesc(nameH2UpUnprocessed,
		"Streams the target provably did not process (above a GOAWAY's last-stream-id, REFUSED_STREAM); each was sent again.", poolLabels, nil)
	descH2Closed = prometheus.NewDesc(nameH2UpClosed,
		"HTTP/2 connections to the target closed, by reason (goaway, backend_closed, ping_timeout, idle_timeout, learned_timeout, max_requests, max_lifetime, conn_error, write_stuck, shutdown, config_change).",
		append(poolLabels, "reason"), nil)
	descH2Pings = prometheus.NewDesc(nameH2UpPings,
		"PINGs on HTTP/2 connections to the target: result sent by kind (check: before a stream on an idle connection; read_idle: after h2.read_idle_timeout), and result timeout (kind any: PINGs of either kind left unanswered).",
		append(poolLabels, "kind", "result"), nil)
	descNegotiated = prometheus.NewDesc(nameUpNegotiated,
		"1 for the protocol the target of a protocol auto upstream chose in its latest TLS handshake (ALPN: h2 or http/1.1); absent before the first.",
		append(poolLabels, "protocol"), nil)
	descProtocolChanges = prometheus.NewDesc(nameUpProtocolChanges,
		"ALPN answers of the target of a protocol auto upstream that differed from the one before (the first included).", poolLabels, nil)
	descH2Replace = prometheus.NewDesc(nameH2UpReplace,
		"HTTP/2 connections to the target dialed ahead to replace one retiring at keepalive.max_requests or max_lifetime.", poolLabels, nil)
	descH2Draining = prometheus.NewDesc(nameH2UpDraining,
		"Open HTTP/2 connections to the target that take no new streams (retiring at keepalive.max_requests or max_lifetime, or after a GOAWAY) and stay open for their streams in flight; up to h2.max_draining of them do not count against h2.max_conns.", poolLabels, nil)
	descH2Waits = prometheus.NewDesc(nameH2UpWaits,
		"Requests that found no HTTP/2 connection to the target able to take their stream and waited, by what for: dial (a connection being dialed that could take it) or slot (a stream slot, every connection full at h2.max_conns). A request counts once per kind at most.",
		append(poolLabels, "for"), nil)
	h2Descs = []*prometheus.Desc{descH2Conns, descH2Streams, descH2Unprocessed, descH2Closed, descH2Pings, descNegotiated, descProtocolChanges, descH2Replace, descH2Draining, descH2Waits}
)

// collectH2 emits the metrics of tp's HTTP/2 pool.
func collectH2(ch chan<- prometheus.Metric, tp *TargetPool) {
	s := tp.H2
	lv := []string{tp.Upstream, tp.Target}
	emit := func(d *prometheus.Desc, t prometheus.ValueType, v float64, extra ...string) {
		ch <- prometheus.MustNewConstMetric(d, t, v, append(slices.Clone(lv), extra...)...)
	}
	k := s.Counters
	emit(descH2Conns, prometheus.GaugeValue, float64(len(s.Conns)))
	emit(descH2Draining, prometheus.GaugeValue, float64(s.Draining))
	emit(descH2Streams, prometheus.CounterValue, float64(k.Streams))
	emit(descH2Unprocessed, prometheus.CounterValue, float64(k.Unprocessed))
	emit(descH2Waits, prometheus.CounterValue, float64(k.DialWaits), "dial")
	emit(descH2Waits, prometheus.CounterValue, float64(k.SlotWaits), "slot")
	if s.MaxRequests > 0 || s.MaxLifetime > 0 {
		emit(descH2Replace, prometheus.CounterValue, float64(k.Replacements))
	}
	reasons := make([]string, 0, len(s.Closes))
	for r := range s.Closes {
		reasons = append(reasons, string(r))
	}
	slices.Sort(reasons)
	for _, r := range reasons {
		emit(descH2Closed, prometheus.CounterValue, float64(s.Closes[h2pool.CloseReason(r)]), r)
	}
	// PingFailures counts both kinds; the split by kind is of the PINGs sent.
	emit(descH2Pings, prometheus.CounterValue, float64(k.PingChecks), "check", "sent")
	emit(descH2Pings, prometheus.CounterValue, float64(k.ReadIdlePings), "read_idle", "sent")
	emit(descH2Pings, prometheus.CounterValue, float64(k.PingFailures), "any", "timeout")
	if s.Protocol == "auto" {
		if s.Negotiated != "" {
			emit(descNegotiated, prometheus.GaugeValue, 1, s.Negotiated)
		}
		emit(descProtocolChanges, prometheus.CounterValue, float64(k.ProtocolChanges))
	}
}
