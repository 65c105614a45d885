package gateway

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"sluice/internal/testutil"
)

// TestH2GatewayCutStreamsLogged: the streams in flight on a connection the gateway ends
// with an error GOAWAY (the client passed a limit, or broke the protocol) are logged 499
// client_body_error with an error that names the GOAWAY and why, not "client closed the
// connection", which said the client left when the gateway had cut it.
func TestH2GatewayCutStreamsLogged(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	s := startH2(t, false, slowH2Backend(t, release), "{max_resets_per_second: 5}")
	cases := []struct {
		name  string
		abuse func(r *rawH2)
		want  string
	}{
		{"rapid reset", func(r *rawH2) {
			for i := range 10 {
				id := uint32(2*i + 3)
				r.headers(id, true, r.block("GET", "/"))
				r.fr.WriteRSTStream(id, http2.ErrCodeCancel)
			}
		}, "GOAWAY ENHANCE_YOUR_CALM (rapid_reset)"},
		{"protocol error", func(r *rawH2) {
			r.headers(4, true, r.block("GET", "/")) // a client's stream id must be odd
		}, "GOAWAY PROTOCOL_ERROR (conn_PROTOCOL_even_stream_id)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRawH2(t, s)
			path := "/slow/" + strings.ReplaceAll(tc.name, " ", "-")
			r.headers(1, true, r.block("GET", path))
			testutil.WaitFor(t, 5*time.Second, "the slow request in flight", func() bool {
				return s.gw.Current().Upstreams["b"].Current().Targets[0].InFlight.Load() > 0
			})
			tc.abuse(r)
			if res := r.readUntil(5*time.Second, func(res h2Result) bool { return len(res.goAways) > 0 }); len(res.goAways) == 0 {
				t.Fatal("no GOAWAY")
			}
			var line map[string]any
			testutil.WaitFor(t, 5*time.Second, "the slow stream's access log line", func() bool {
				for _, l := range s.accessLines(0) {
					if l["path"] == path {
						line = l
						return true
					}
				}
				return false
			})
			if line["status"] != 499.0 || line["reason"] != "client_body_error" || !strings.Contains(line["error"].(string), tc.want) {
				t.Errorf("access log: status %v reason %v error %q; want 499 client_body_error, an error with %q", line["status"], line["reason"], line["error"], tc.want)
			}
		})
	}
}
