package gateway

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

const mirrorTracingConfig = `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - {id: primary, targets: [{address: "{{primary}}"}]}
  - {id: shadow, targets: [{address: "{{shadow}}"}]}
routes:
  - id: mirrored
    upstream: primary
    mirror: {upstream: shadow}
tracing:
  endpoint: {{otlp}}
  sampler: {{sampler}}
  ratio: 1
  batch_timeout: 10ms
`

// TestMirrorCopyCarriesTraceContext: with tracing on, the gateway takes the client's
// traceparent out of the request and sends its own per attempt; a mirror copy is made from
// the request after that, so it must get the gateway's traceparent too (same trace, the
// gateway's span as parent), and never the client's tracestate alone, which W3C Trace
// Context forbids without the traceparent it belongs to. Sampled and not sampled alike.
func TestMirrorCopyCarriesTraceContext(t *testing.T) {
	const traceID, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct{ sampler, flags string }{{"always_on", "01"}, {"always_off", "00"}} {
		t.Run(tc.sampler, func(t *testing.T) {
			primary, shadow := newTraceBackend(t), newTraceBackend(t)
			_, endpoint := startOTLPHTTP(t)
			tg := startGateway(t, mirrorTracingConfig, map[string]string{"primary": primary.addr(),
				"shadow": shadow.addr(), "otlp": endpoint, "sampler": tc.sampler})
			c := &http.Client{Timeout: 10 * time.Second}
			defer c.CloseIdleConnections()
			resp := tracedGet(t, c, tg.url("/x"), "Traceparent: 00-"+traceID+"-"+clientSpan+"-"+tc.flags,
				"Tracestate: congo=t61rcWkgMzE")
			if resp.StatusCode != 200 {
				t.Fatalf("status %d", resp.StatusCode)
			}
			testutil.WaitFor(t, 3*time.Second, "the copy", func() bool {
				shadow.mu.Lock()
				defer shadow.mu.Unlock()
				return len(shadow.parents) == 1
			})
			ptp, _ := primary.last(1)
			tp, state := shadow.last(1)
			if tp == "" {
				t.Fatalf("the copy has no traceparent (tracestate %q); the primary got %q", state, ptp)
			}
			if strings.Contains(tp, clientSpan) {
				t.Errorf("the copy got the client's traceparent %q", tp)
			}
			id, _, flags := splitParent(t, tp)
			pid, _, pflags := splitParent(t, ptp)
			if id != traceID || pid != traceID || flags != pflags {
				t.Errorf("copy's traceparent %q, primary's %q: want the client's trace %s with the primary's flags", tp, ptp, traceID)
			}
			if state != "congo=t61rcWkgMzE" {
				t.Errorf("copy's tracestate %q, want the client's with the traceparent", state)
			}
		})
	}
}
