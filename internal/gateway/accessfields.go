package gateway

import (
	"strconv"

	"sluice/internal/accesslog"
	"sluice/internal/server"
)

// logRequestFields adds the request's HTTP version, user agent and, when query is set
// (log.access_query), its query string to an access log line. Fields the request does not
// have are left out. docs/config.md lists every access log field.
func logRequestFields(ln *accesslog.Line, ex server.Served, query bool) {
	req := ex.Request()
	if query && req.Query != nil {
		ln.Bytes("query", req.Query)
	}
	ln.Str("http_version", ex.Proto())
	if ua, ok := req.Header.Get("User-Agent"); ok {
		ln.Bytes("user_agent", ua)
	}
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
