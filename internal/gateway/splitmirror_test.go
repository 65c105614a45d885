package gateway

import (
	"fmt"
	"io"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestMirrorOnSplitCopiesEveryShare: a mirror on a split route copies the requests of every
// share (docs/traffic.md), in proportion. The split's rotation and the mirror's sampling
// both number the route's requests; if their sequences move in step, the mirrored requests
// are exactly those of one slice of the split's line: with a 10% canary listed first and
// mirror percent 10, every copy was the canary's and none the stable share's.
func TestMirrorOnSplitCopiesEveryShare(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cw, sw   int
		percent  string
		requests int
	}{
		{"canary 10 percent, mirror 10", 10, 90, "10", 400},
		{"halves, mirror 50", 50, 50, "50", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			canary, stable := newNamedBackend(t, "canary"), newNamedBackend(t, "stable")
			shadow, seen := recordingMirror(t)
			tg := startGateway(t, fmt.Sprintf(`
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - {id: canary, targets: [{address: "{{canary}}"}]}
  - {id: stable, targets: [{address: "{{stable}}"}]}
  - {id: shadow, targets: [{address: "{{shadow}}"}]}
routes:
  - id: api
    split:
      upstreams:
        - {upstream: canary, weight: %d}
        - {upstream: stable, weight: %d}
    mirror: {upstream: shadow, percent: %s}
`, tc.cw, tc.sw, tc.percent), map[string]string{"canary": canary.addr(), "stable": stable.addr(), "shadow": shadow})
			c := newClient()
			servedBy := map[string]string{}
			for i := range tc.requests {
				uri := fmt.Sprintf("/r/%d", i)
				resp, err := c.Get(tg.url(uri))
				if err != nil {
					t.Fatal(err)
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				servedBy[uri] = string(b)
			}
			var pct float64
			fmt.Sscan(tc.percent, &pct)
			want := int(pct / 100 * float64(tc.requests))
			testutil.WaitFor(t, 5*time.Second, "the copies", func() bool { return len(seen()) >= want*9/10 })
			time.Sleep(100 * time.Millisecond) // the last few
			byShare := map[string]int{}
			for _, s := range seen() {
				byShare[servedBy[s.uri]]++
			}
			// Expected: copies in the split's proportion (canary cw%, stable sw%), loosely.
			wantCanary := want * tc.cw / 100
			t.Logf("copies by share: %v", byShare)
			if byShare["canary"] < wantCanary/3 || byShare["stable"] < (want-wantCanary)/3 {
				t.Errorf("%d copies by the share that served the request: %v; want about %d canary, %d stable",
					len(seen()), byShare, wantCanary, want-wantCanary)
			}
		})
	}
}
