package gateway

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestReloadWithoutActiveCheckDropsVerdict: a target the active check marked unhealthy is
// available again after a reload that removes the active check. Its verdict was carried
// over (upstream.Target.Inherit) with nothing left to revise it: the target stayed out of
// rotation, "unhealthy" in the admin API, until the process restarted. An ejection (passive,
// timed) is still carried.
func TestReloadWithoutActiveCheckDropsVerdict(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/healthz" {
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	t.Cleanup(backend.Close)
	addr := backend.Listener.Addr().String()
	cfg1 := mustParse(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
upstreams:
  - id: app
    targets: [{address: %q}]
    health_check:
      panic_threshold: 0
      active: {path: /healthz, interval: 20ms, timeout: 1s, unhealthy_threshold: 1}
routes: [{id: all, upstream: app}]
`, addr), nil)
	g1, err := buildNext(cfg1, nil, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(g1.Close)
	u1 := g1.Upstreams["app"]
	testutil.WaitFor(t, 5*time.Second, "unhealthy", func() bool { return u1.Current().Targets[0].Health().State == "unhealthy" })

	for _, tc := range []struct {
		name, check string
		want        string
	}{
		{"active check removed", `{panic_threshold: 0}`, "unknown"},
		{"passive only", `{panic_threshold: 0, passive: {consecutive_failures: 3}}`, "unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg2 := mustParse(t, fmt.Sprintf(`
listeners: [{address: "127.0.0.1:0"}]
upstreams:
  - id: app
    targets: [{address: %q}]
    health_check: %s
routes: [{id: all, upstream: app}]
`, addr, tc.check), nil)
			g2, err := buildNext(cfg2, g1, testLogger(t))
			if err != nil {
				t.Fatal(err)
			}
			defer g2.Close()
			u2 := g2.Upstreams["app"]
			tg := u2.Current().Targets[0]
			if h := tg.Health(); string(h.State) != tc.want {
				t.Errorf("after the reload: %+v, want %s", h, tc.want)
			}
			if got := u2.Pick(nil, nil); got != tg {
				t.Errorf("pick = %v, want the target: no active check is left to mark it down", got)
			}
		})
	}
}
