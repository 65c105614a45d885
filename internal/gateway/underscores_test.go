package gateway

import (
	"strconv"
	"testing"
	"time"

	"sluice/internal/reason"
)

// TestUnderscoresInHeaderNames: header names with underscores are valid tokens, but CGI-style
// backends read "_" as "-", so X_Forwarded_For would stand in for the gateway's own
// X-Forwarded-For there. The listener drops them (default), passes them, or refuses the
// request.
func TestUnderscoresInHeaderNames(t *testing.T) {
	const request = "GET /u HTTP/1.1\r\nHost: h\r\nX-Request-Id: us-1\r\nX_Forwarded_For: 6.6.6.6\r\n" +
		"Transfer_Encoding: chunked\r\nX-Ok: 1\r\nConnection: close\r\n\r\n"
	const reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
	ok := "HTTP/1.1 200 OK\r\nX-Request-Id: us-1\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
	rejectBody := `{"error":"underscore_in_header","status":400,"message":"` + reason.Describe(reason.UnderscoreInHeader) +
		`","request_id":"us-1"}` + "\n" // no detail: errors.expose_details is off by default
	cases := []struct {
		name, listener, backend, client string
		log                             map[string]any
		dropped                         int // counted in sluice_dropped_fields_total
	}{
		{"default drops", "", "GET /u HTTP/1.1\r\nHost: h\r\nX-Ok: 1\r\n" + forwarded("h", "us-1") + "\r\n", ok,
			map[string]any{"status": 200, "dropped_headers": 2}, 2},
		{"drop", "underscores_in_headers: drop", "GET /u HTTP/1.1\r\nHost: h\r\nX-Ok: 1\r\n" + forwarded("h", "us-1") + "\r\n", ok,
			map[string]any{"status": 200, "dropped_headers": 2}, 2},
		{"allow", "underscores_in_headers: allow", "GET /u HTTP/1.1\r\nHost: h\r\nX_Forwarded_For: 6.6.6.6\r\n" +
			"Transfer_Encoding: chunked\r\nX-Ok: 1\r\n" + forwarded("h", "us-1") + "\r\n", ok,
			map[string]any{"status": 200, "dropped_headers": nil}, 0},
		{"reject", "underscores_in_headers: reject", "", "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\n" +
			"X-Sluice-Error: underscore_in_header\r\nX-Request-Id: us-1\r\nContent-Length: " + strconv.Itoa(len(rejectBody)) +
			"\r\nConnection: close\r\n\r\n" + rejectBody,
			map[string]any{"status": 400, "reason": "underscore_in_header"}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			be, got := recordingBackend(t, reply)
			tg := edgeGateway(t, be, tc.listener, "")
			out := rawExchange(t, tg.addr, request, 5*time.Second)
			if tc.backend != "" {
				wantBytes(t, "backend read", received(t, got), tc.backend)
			} else {
				select {
				case r := <-got:
					t.Errorf("a refused request reached the backend: %q", r)
				default:
				}
			}
			wantBytes(t, "client got", out, tc.client)
			wantFields(t, tg.accessLines(1)[0], tc.log)
			if tc.listener == "underscores_in_headers: reject" {
				waitMetric(t, tg, "sluice_gateway_errors_total", map[string]string{"reason": "underscore_in_header"}, 1)
			} else {
				waitMetric(t, tg, "sluice_dropped_fields_total", map[string]string{"section": "request_header"}, float64(tc.dropped))
			}
		})
	}
}
