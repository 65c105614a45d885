package metrics

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var codeClasses = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

// Route is the pre-resolved series of one (route, upstream) pair. The gateway keeps one per
// route of the serving config, so recording a request does no label lookup.
type Route struct {
	m                *Metrics
	route, upstream  string
	requests         [6]prometheus.Counter // by status/100; 2xx to 5xx resolved up front
	duration         prometheus.Observer
	upstreamDuration prometheus.Observer
	up               *Upstream
	grpc             counterSet // gRPC calls by grpc_code, made when a code is first seen
}

// Upstream holds the per-upstream series recorded per attempt.
type Upstream struct {
	attempts counterSet // by outcome
}

// Request records one finished request: status as the client saw it (499 when the client
// left), total time, and time spent upstream (only when an upstream was tried).
func (r *Route) Request(status int, total, upstream time.Duration, triedUpstream bool) {
	r.counter(status).Inc()
	r.duration.Observe(total.Seconds())
	if triedUpstream && r.upstreamDuration != nil {
		r.upstreamDuration.Observe(upstream.Seconds())
	}
}

// grpcCodeNames are the gRPC status codes' names (the gRPC spec's statuscodes.md), by code.
var grpcCodeNames = [...]string{"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT",
	"DEADLINE_EXCEEDED", "NOT_FOUND", "ALREADY_EXISTS", "PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED", "FAILED_PRECONDITION", "ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED",
	"INTERNAL", "UNAVAILABLE", "DATA_LOSS", "UNAUTHENTICATED"}

// GRPCCall counts one gRPC call answered with grpc-status code. The label is the code's
// name; a backend's number outside 0-16 counts as OTHER, so that the series stay 17 (and
// one) per route whatever backends send.
func (r *Route) GRPCCall(code int) {
	name := "OTHER"
	if code >= 0 && code < len(grpcCodeNames) {
		name = grpcCodeNames[code]
	}
	r.grpc.get(name).Inc()
}

// Attempt counts one upstream attempt with its outcome ("ok" or a reason code).
func (r *Route) Attempt(outcome string) { r.up.attempts.get(outcome).Inc() }

func (r *Route) counter(status int) prometheus.Counter {
	c := status / 100
	if c >= 2 && c <= 5 {
		return r.requests[c]
	}
	if c != 1 {
		c = 0
	}
	return r.m.requests.WithLabelValues(r.route, r.upstream, codeClasses[c])
}
