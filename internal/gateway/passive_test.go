package gateway

import (
	"testing"

	"sluice/internal/testutil"
)

// TestPassiveEjectionByDefault: with no health_check written, a dead target is ejected after
// 5 failed connects, so it stops costing a failed request (or a retry) every other request;
// passive: {enabled: false} brings the old behaviour back.
func TestPassiveEjectionByDefault(t *testing.T) {
	tests := []struct {
		name    string
		passive string
		maxFail int // failed requests out of 40
		minFail int
	}{
		{name: "default", maxFail: 5, minFail: 5},
		{name: "turned off", passive: "    health_check: {passive: {enabled: false}}\n", minFail: 19, maxFail: 21},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			live := echoBackend(t, "live")
			tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: two
    targets: [{address: "{{live}}"}, {address: "{{dead}}"}]
    retry: {attempts: 1}
`+tc.passive+`routes:
  - {id: all, upstream: two}
admin: {address: "127.0.0.1:0"}
`, map[string]string{"live": hostport(live), "dead": testutil.RefusingAddr(t)})
			c := newClient()
			failed := 0
			for range 40 {
				if resp := get(t, c, tg.url("/")); resp.StatusCode != 200 {
					failed++
				}
			}
			if failed < tc.minFail || failed > tc.maxFail {
				t.Errorf("%d of 40 requests failed, want %d to %d", failed, tc.minFail, tc.maxFail)
			}
			// The admin view (and the dashboard's upstreams page) counts the ejection.
			var ups struct {
				Upstreams []struct {
					Targets []struct {
						Address      string
						Health       string
						Ejections    int    `json:"ejections"`
						EjectedUntil string `json:"ejected_until"`
					}
				}
			}
			adminGet(t, tg.adminURL(""), "/admin/upstreams", "", &ups)
			wantEjections := 0
			if tc.passive == "" {
				wantEjections = 1
			}
			for _, tt := range ups.Upstreams[0].Targets {
				if tt.Address != hostport(live) && (tt.Ejections != wantEjections || (wantEjections > 0) != (tt.EjectedUntil != "")) {
					t.Errorf("dead target in /admin/upstreams: %+v, want %d ejection(s)", tt, wantEjections)
				}
			}
		})
	}
}
