package gateway

import (
	"crypto/tls"
	"strconv"
	"time"

	"sluice/internal/accesslog"
	"sluice/internal/config"
	"sluice/internal/proxy"
	"sluice/internal/router"
	"sluice/internal/server"
)

// The access log line: logAccess writes the fields of the serving config's
// log.access_fields, compiled once per config into a config.AccessFieldSet (g.logFields),
// so a request tests one bit per field; the default set is every field, and the line is
// byte for byte the one written before fields were configurable. Fields are written in the
// order of config.AccessField, whatever the order of the list. docs/config.md lists them.

// The runs of fields a Line remembers from its last line (accesslog.Line.Recall): who asks
// (client_ip, method, host; the same on a kept-alive connection), with what (http_version,
// user_agent) and where it went (route, upstream, target). Each is compared with the
// remembered values byte for byte and copied whole when they match.
const (
	lineRunClient accesslog.Run = iota
	lineRunRequest
	lineRunRoute
)

// logAccess writes ex's access log line; dur is the request's time from its start to now
// (read once by the caller for the log and the metrics).
func (g *Gateway) logAccess(ex server.Served, in *router.Input, routeID, upstreamID string, rec *proxy.Record, dur time.Duration) {
	ln := g.access.Begin()
	if ln == nil {
		return
	}
	m := config.AccessFieldSet(g.logFields.Load())
	logClientFields(ln, m, ex, in, rec)
	logResultFields(ln, m, ex, routeID, upstreamID, rec, dur)
	if st := ex.TLS(); st != nil {
		logTLSFields(ln, m, st, ex.ClientSubject())
	}
	if rec.Tunnel.Protocol != "" {
		logTunnelFields(ln, m, &rec.Tunnel)
	}
	logOutcomeFields(ln, m, ex, rec)
	g.access.Write(ln)
}

// logClientFields adds who asked for what: time to trace_id.
func logClientFields(ln *accesslog.Line, m config.AccessFieldSet, ex server.Served, in *router.Input, rec *proxy.Record) {
	if m.Has(config.AccessTime) {
		ln.Time("time", ex.StartTime())
	}
	if m.Has(config.AccessRequestID) {
		ln.Bytes("request_id", ex.RequestIDBytes())
	}
	ip := clientIP(ex, rec)
	if !ln.Recall(lineRunClient, uint64(m), ip, in.Method, in.Host) {
		at := ln.Mark()
		if m.Has(config.AccessClientIP) {
			ln.Str("client_ip", ip)
		}
		if m.Has(config.AccessMethod) {
			ln.Str("method", in.Method)
		}
		if m.Has(config.AccessHost) {
			ln.Str("host", in.Host)
		}
		ln.Remember(lineRunClient, at, uint64(m), ip, in.Method, in.Host)
	}
	if m.Has(config.AccessPath) {
		ln.Str("path", in.Path)
	}
	logRequestFields(ln, m, ex)
	logPluginFields(ln, m, rec) // plugins.go
	if len(rec.TraceID) > 0 && m.Has(config.AccessTraceID) {
		ln.Bytes("trace_id", rec.TraceID) // a request the tracing records (tracing.go)
	}
}

// logRequestFields adds the request's query string, HTTP version and user agent. Fields
// the request does not have are left out.
func logRequestFields(ln *accesslog.Line, m config.AccessFieldSet, ex server.Served) {
	req := ex.Request()
	if req.Query != nil && m.Has(config.AccessQuery) { // only with log.access_query
		ln.Bytes("query", req.Query)
	}
	proto := ex.Proto()
	ua, hasUA := req.Header.Get("User-Agent")
	key := uint64(m)
	if !hasUA {
		key &^= 1 << config.AccessUserAgent // absent, not empty
	}
	// The header's bytes are only compared and copied, never kept (accesslog.Line.Remember).
	uaStr := unsafeString(ua)
	if ln.Recall(lineRunRequest, key, proto, uaStr, "") {
		return
	}
	at := ln.Mark()
	if proto != "" && m.Has(config.AccessHTTPVersion) {
		ln.Str("http_version", proto)
	}
	if hasUA && m.Has(config.AccessUserAgent) {
		ln.Str("user_agent", uaStr)
	}
	ln.Remember(lineRunRequest, at, key, proto, uaStr, "")
}

// logResultFields adds what was answered, where from and how long it took: status to
// upstream_ms.
func logResultFields(ln *accesslog.Line, m config.AccessFieldSet, ex server.Served, routeID, upstreamID string, rec *proxy.Record, dur time.Duration) {
	if m.Has(config.AccessStatus) {
		status := int64(ex.Status())
		if rec.ClientGone {
			status = 499
		}
		ln.Int("status", status)
	}
	if m.Has(config.AccessBytesIn) {
		ln.Int("bytes_in", ex.BodyBytes())
	}
	if m.Has(config.AccessBytesOut) {
		ln.Int("bytes_out", ex.BytesOut())
	}
	if m.Has(config.AccessBytesSent) {
		ln.Int("bytes_sent", ex.BytesSent())
	}
	if !ln.Recall(lineRunRoute, uint64(m), routeID, upstreamID, rec.Target) {
		at := ln.Mark()
		if m.Has(config.AccessRoute) {
			ln.Str("route", routeID)
		}
		if m.Has(config.AccessUpstream) {
			ln.Str("upstream", upstreamID)
		}
		if m.Has(config.AccessTarget) {
			ln.Str("target", rec.Target)
		}
		ln.Remember(lineRunRoute, at, uint64(m), routeID, upstreamID, rec.Target)
	}
	if n := rec.NumAttempts; n > 0 && rec.Attempts[n-1].Status != 0 && m.Has(config.AccessUpstreamStatus) {
		ln.Int("upstream_status", int64(rec.Attempts[n-1].Status))
	}
	if code, ok := grpcStatus(ex, rec); ok && m.Has(config.AccessGRPCStatus) {
		ln.Int("grpc_status", int64(code))
	}
	if m.Has(config.AccessDurationMs) {
		ln.Ms("duration_ms", dur)
	}
	if m.Has(config.AccessUpstreamMs) {
		ln.Ms("upstream_ms", rec.UpstreamTime)
	}
}

// grpcStatus is the grpc-status of a gRPC call's answer: the one the proxy relayed (the
// backend's, or the gateway's trailers on a cut answer), else that of the gateway's own
// error answer. ok is false for an answer without one (not a gRPC call, or a call cut
// off without a status).
func grpcStatus(ex server.Served, rec *proxy.Record) (code int, ok bool) {
	if rec.HasGRPCStatus {
		return int(rec.GRPCStatus), true
	}
	return ex.ErrorGRPCStatus()
}

// logTLSFields adds a TLS listener's connection: tls_version to client_cert_subject
// (subject: the verified client certificate's, rendered once per connection by the server).
func logTLSFields(ln *accesslog.Line, m config.AccessFieldSet, st *tls.ConnectionState, subject string) {
	if m.Has(config.AccessTLSVersion) {
		ln.Str("tls_version", tls.VersionName(st.Version))
	}
	if m.Has(config.AccessTLSCipher) {
		ln.Str("tls_cipher", cipherSuiteName(st.CipherSuite))
	}
	if m.Has(config.AccessTLSResumed) {
		ln.Bool("tls_resumed", st.DidResume)
	}
	if m.Has(config.AccessSNI) {
		ln.Str("sni", st.ServerName)
	}
	if subject != "" && m.Has(config.AccessClientCertSubject) {
		ln.Str("client_cert_subject", subject)
	}
}

// logTunnelFields adds an upgraded connection: tunnel to tunnel_ms.
func logTunnelFields(ln *accesslog.Line, m config.AccessFieldSet, tn *proxy.TunnelRecord) {
	if m.Has(config.AccessTunnel) {
		ln.Str("tunnel", tn.Protocol)
	}
	if m.Has(config.AccessTunnelClosed) {
		ln.Str("tunnel_closed", tn.Closed)
	}
	if m.Has(config.AccessTunnelBytesUp) {
		ln.Int("tunnel_bytes_up", tn.BytesUp)
	}
	if m.Has(config.AccessTunnelBytesDown) {
		ln.Int("tunnel_bytes_down", tn.BytesDown)
	}
	if m.Has(config.AccessTunnelMs) {
		ln.Ms("tunnel_ms", tn.Duration)
	}
}

// logOutcomeFields adds what was unusual about the exchange and how the gateway got its
// answer: early_response to tries.
func logOutcomeFields(ln *accesslog.Line, m config.AccessFieldSet, ex server.Served, rec *proxy.Record) {
	if rec.EarlyResponse && m.Has(config.AccessEarlyResponse) {
		ln.Bool("early_response", true)
	}
	if rec.Interim > 0 && m.Has(config.AccessInterimResponses) {
		ln.Int("interim_responses", int64(rec.Interim))
	}
	header, trailer := ex.DroppedFields()
	if header > 0 && m.Has(config.AccessDroppedHeaders) {
		ln.Int("dropped_headers", int64(header))
	}
	if n := trailer + rec.DroppedRequestTrailers; n > 0 && m.Has(config.AccessDroppedRequestTrailers) {
		ln.Int("dropped_request_trailers", int64(n))
	}
	if rec.DroppedResponseTrailers > 0 && m.Has(config.AccessDroppedResponseTrailers) {
		ln.Int("dropped_response_trailers", int64(rec.DroppedResponseTrailers))
	}
	if rec.Reason != "" {
		if m.Has(config.AccessReason) {
			ln.Str("reason", string(rec.Reason))
		}
		if rec.Err != nil && m.Has(config.AccessError) {
			ln.Str("error", rec.Err.Error())
		}
	}
	if rec.NumAttempts > 0 {
		if m.Has(config.AccessAttempts) {
			ln.Int("attempts", int64(rec.NumAttempts))
		}
		if m.Has(config.AccessTries) {
			ln.JSON("tries", (*attemptsJSON)(rec))
		}
	}
}

// attemptsJSON is a Record's attempts as the access log's "tries" array, appended straight
// into the line.
type attemptsJSON proxy.Record

func (a *attemptsJSON) AppendJSON(b []byte) []byte { return appendAttempts(b, (*proxy.Record)(a)) }

// appendAttempts appends the attempts of rec as a JSON array. Targets, outcomes and
// conditions are plain ASCII tokens, so strconv's quoting is valid JSON for them
// (appendToken skips its per-rune work for them).
func appendAttempts(b []byte, rec *proxy.Record) []byte {
	b = append(b, '[')
	for i := 0; i < rec.NumAttempts; i++ {
		a := &rec.Attempts[i]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"target":`...)
		b = appendToken(b, a.Target)
		b = append(b, `,"conn":`...)
		b = strconv.AppendUint(b, a.ConnID, 10)
		b = append(b, `,"reused":`...)
		b = strconv.AppendBool(b, a.Reused)
		b = append(b, `,"idle_ms":`...)
		b = strconv.AppendInt(b, a.IdleAge.Milliseconds(), 10)
		b = append(b, `,"outcome":`...)
		b = appendToken(b, a.Outcome)
		if a.Status != 0 {
			b = append(b, `,"status":`...)
			b = strconv.AppendInt(b, int64(a.Status), 10)
		}
		if a.Retry != "" {
			b = append(b, `,"retried_on":`...)
			b = appendToken(b, a.Retry)
		}
		b = append(b, '}')
	}
	return append(b, ']')
}

// appendToken appends s quoted as strconv.AppendQuote does, copying it whole when it is
// printable ASCII without a quote or a backslash (then both quotings are the same bytes).
func appendToken(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.AppendQuote(b, s)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}
