package proxy

// A gRPC call's deadline through the gateway (issue #16). The client's grpc-timeout is the
// time it will wait for the whole call, counted from when it sent the request: the gateway
// counts it from the request's arrival (Arrival), once per request, not per attempt, and
// every HTTP/2 attempt forwards what is left of it, so that the backend never works for a
// client that has stopped waiting. A retry or re-send that would start with nothing left is
// not started: the answer is DEADLINE_EXCEEDED, upstream_timeout, as it is when the time
// runs out during an attempt, whatever the attempt was waiting for (a stream slot, a dial, a
// connection's SETTINGS, the response).
//
// The route's try timeouts (timeouts.read, retry.per_try_timeout, retry.deadline) are not
// forwarded, unlike Envoy's grpc-timeout (router: the per-try timeout, or the route timeout,
// less the time spent: envoyproxy/envoy#4628, #13196): they bound the wait for the response
// head, not the call, and a streaming call's head comes at its start; a backend told the
// read timeout would end a stream the gateway would still relay.

import (
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"

	"sluice/internal/h1"
	"sluice/internal/reason"
)

// callDeadline is the end of the request's grpc-timeout, counted from its arrival (zero when
// it has none, or one that is not valid, which goes upstream as it came). It is read once,
// by the request's first HTTP/2 attempt; now is when that attempt starts.
func (r *retrier) callDeadline(now time.Time) time.Time {
	if r.callRead {
		return r.callEnd
	}
	r.callRead = true
	d, ok := grpcTimeout(&r.fwd.req.Header)
	if !ok {
		return time.Time{}
	}
	from := now
	if a, ok := r.ds.(Arrival); ok {
		if at := a.StartTime(); !at.IsZero() && at.Before(now) {
			from = at
		}
	}
	r.callEnd = from.Add(d)
	return r.callEnd
}

// callOver reports whether the request's grpc-timeout has run out.
func (r *retrier) callOver() bool { return passed(r.callEnd) }

// callTimedOut is the answer to a call whose grpc-timeout ran out: last is the failure of
// the attempt it ran out in or after (nil: before any), kept as it is when it is the
// timeout itself.
func callTimedOut(last *reason.Error) *reason.Error {
	switch {
	case last == nil:
		return reason.New(504, reason.ResponseTimeout, "", errors.New("grpc-timeout ran out before an attempt could start"))
	case last.Code == reason.ResponseTimeout:
		return last
	}
	return reason.New(504, reason.ResponseTimeout, last.Target, fmt.Errorf("grpc-timeout ran out: %w", last))
}

// setGRPCTimeout makes the upstream request's grpc-timeout field say left when it is the
// client's (client: the client's first value, n: how many it sent). A field the route's
// rewrite set (set_headers) or added (add_headers) is the operator's and stands as it is,
// alone: gRPC has one grpc-timeout, and a backend reads two as its library chooses (grpc-go
// and grpc-java take the last). One the rewrite removed is not put back. The field's slice
// is the request's own (parseH2Head), the client's values first: it is written in place.
func setGRPCTimeout(h map[string][]string, client []byte, n int, left time.Duration) {
	vs := h["Grpc-Timeout"]
	switch {
	case len(vs) == 0 || vs[0] != string(client): // removed, or replaced by the route's
	case len(vs) > n: // the client's, then the route's added
		h["Grpc-Timeout"] = vs[n:]
	default:
		vs[0] = formatGRPCTimeout(left)
		h["Grpc-Timeout"] = vs[:1]
	}
}

// formatGRPCTimeout renders d as a grpc-timeout value: at most 8 digits, in the finest unit
// that holds d, rounded down (never more time than is left); at least 1n.
func formatGRPCTimeout(d time.Duration) string {
	const most = 99999999
	d = max(d, time.Nanosecond)
	i := 0
	for d/grpcUnits[i] > most && i < len(grpcUnits)-1 { // an hour's count is at most 2562047
		i++
	}
	var b [9]byte // one allocation, the string
	return string(append(strconv.AppendInt(b[:0], int64(d/grpcUnits[i]), 10), grpcUnitNames[i]))
}

// grpcUnits are grpc-timeout's units, finest first, named by grpcUnitNames.
var grpcUnits = [...]time.Duration{time.Nanosecond, time.Microsecond, time.Millisecond, time.Second, time.Minute, time.Hour}

const grpcUnitNames = "numSMH"

// grpcTimeout parses a gRPC request's grpc-timeout field ("100m", "5S": 1 to 8 digits and a
// unit of H, M, S, m, u, n; gRPC over HTTP/2, "Requests"). A value past what a Duration holds
// (above 2562047H) is the longest Duration, as grpc-go reads it: before, it wrapped to a
// negative wait and the call ended at once with DEADLINE_EXCEEDED.
func grpcTimeout(h *h1.Header) (time.Duration, bool) {
	v, ok := h.Get("Grpc-Timeout")
	if !ok || len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	var n int64
	for _, c := range v[:len(v)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	i := strings.IndexByte(grpcUnitNames, v[len(v)-1])
	if i < 0 {
		return 0, false
	}
	unit := grpcUnits[i]
	if n > math.MaxInt64/int64(unit) {
		return math.MaxInt64, true
	}
	return time.Duration(n) * unit, true
}
