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
`, map[string]string{"live": hostport(live), "dead": testutil.DeadAddr(t)})
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
		})
	}
}
