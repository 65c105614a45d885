package config

import (
	"fmt"
	"strings"
)

// AccessField is one field of the access log line. Lines write their fields in this order,
// whatever the order of log.access_fields; docs/config.md describes each one.
type AccessField uint8

// The access log's fields, in the order of the line.
const (
	AccessTime AccessField = iota
	AccessRequestID
	AccessClientIP
	AccessMethod
	AccessHost
	AccessPath
	AccessQuery
	AccessHTTPVersion
	AccessUserAgent
	AccessConsumer
	AccessPlugin
	AccessTraceID
	AccessStatus
	AccessBytesIn
	AccessBytesOut
	AccessBytesSent
	AccessRoute
	AccessUpstream
	AccessTarget
	AccessUpstreamStatus
	AccessGRPCStatus
	AccessDurationMs
	AccessUpstreamMs
	AccessTLSVersion
	AccessTLSCipher
	AccessTLSResumed
	AccessSNI
	AccessClientCertSubject
	AccessTunnel
	AccessTunnelClosed
	AccessTunnelBytesUp
	AccessTunnelBytesDown
	AccessTunnelMs
	AccessEarlyResponse
	AccessInterimResponses
	AccessDroppedHeaders
	AccessDroppedRequestTrailers
	AccessDroppedResponseTrailers
	AccessReason
	AccessError
	AccessAttempts
	AccessTries
	numAccessFields
)

// accessFieldNames are the fields' names in the line and in log.access_fields, by
// AccessField.
var accessFieldNames = [numAccessFields]string{
	"time", "request_id", "client_ip", "method", "host", "path", "query", "http_version",
	"user_agent", "consumer", "plugin", "trace_id", "status", "bytes_in", "bytes_out",
	"bytes_sent", "route", "upstream", "target", "upstream_status", "grpc_status", "duration_ms",
	"upstream_ms", "tls_version", "tls_cipher", "tls_resumed", "sni", "client_cert_subject",
	"tunnel", "tunnel_closed", "tunnel_bytes_up", "tunnel_bytes_down", "tunnel_ms",
	"early_response", "interim_responses", "dropped_headers", "dropped_request_trailers",
	"dropped_response_trailers", "reason", "error", "attempts", "tries",
}

// String returns the field's name as the line and the config spell it.
func (f AccessField) String() string { return accessFieldNames[f] }

// AccessFieldNames returns the names of every access log field, in the line's order.
func AccessFieldNames() []string { return accessFieldNames[:] }

// AccessFieldSet is a set of access log fields, one bit per [AccessField]: the gateway
// compiles log.access_fields into one per config, so that a request tests a bit per field
// instead of comparing names.
type AccessFieldSet uint64

// AllAccessFields holds every field.
const AllAccessFields = AccessFieldSet(1)<<numAccessFields - 1

// Has reports whether f is in s.
func (s AccessFieldSet) Has(f AccessField) bool { return s&(1<<f) != 0 }

// AccessFieldSet returns the fields access log lines carry under l: those of AccessFields
// when set, else every field but those of AccessExcludeFields; query only with AccessQuery.
// Unknown names are left out (Validate reports them).
func (l *Log) AccessFieldSet() AccessFieldSet {
	s := AllAccessFields
	if l.AccessFields != nil {
		s = 0
		for _, n := range l.AccessFields {
			if f, ok := accessFieldByName(n); ok {
				s |= 1 << f
			}
		}
	}
	for _, n := range l.AccessExcludeFields {
		if f, ok := accessFieldByName(n); ok {
			s &^= 1 << f
		}
	}
	if !l.AccessQuery {
		s &^= 1 << AccessQuery
	}
	return s
}

func accessFieldByName(name string) (AccessField, bool) {
	for f, n := range accessFieldNames {
		if n == name {
			return AccessField(f), true
		}
	}
	return 0, false
}

// validateAccessFields checks log.access_fields and log.access_exclude_fields: known
// names, each once, not both lists, and query only where access_query lets it in.
func (l *Log) validateAccessFields(p *problems) {
	if l.AccessFields != nil && l.AccessExcludeFields != nil {
		p.add("log.access_exclude_fields", "set access_fields or access_exclude_fields, not both")
	}
	if l.AccessFields != nil && len(l.AccessFields) == 0 {
		p.add("log.access_fields", `must name at least one field (access: "off" turns the access log off)`)
	}
	check := func(key string, names []string) {
		seen := map[string]int{}
		for i, n := range names {
			b := fmt.Sprintf("log.%s[%d]", key, i)
			f, ok := accessFieldByName(n)
			switch j, dup := seen[n]; {
			case !ok:
				p.add(b, "unknown field %q: want one of %s", n, strings.Join(accessFieldNames[:], ", "))
			case dup:
				p.add(b, "%q listed twice (also %s[%d])", n, key, j)
			case f == AccessQuery && key == "access_fields" && !l.AccessQuery:
				p.add(b, `"query" needs access_query: true (query strings can carry secrets)`)
			}
			seen[n] = i
		}
	}
	check("access_fields", l.AccessFields)
	check("access_exclude_fields", l.AccessExcludeFields)
}
