package gateway

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// TestTunnelOnSplitShareClosedByReload: a WebSocket tunnel on a split route goes through
// the share that was picked; when a reload changes the route, the tunnel is closed once the
// grace passes (1001), as on any route, whichever share carries it: not only the share of
// the route's primary upstream.
func TestTunnelOnSplitShareClosedByReload(t *testing.T) {
	a, b := newWSBackend(t), newWSBackend(t)
	const cfg = `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - {id: a, targets: [{address: {{a}}}]}
  - {id: b, targets: [{address: {{b}}}]}
routes:
  - id: change
    match: {path_prefix: /change}
    tunnel: {idle_timeout: %s}
    split:
      upstreams: [{upstream: a, weight: 1}, {upstream: b, weight: 0}]
      rules: [{headers: [{name: X-Share, exact: b}], upstream: b}]
shutdown_grace: 200ms
`
	vars := map[string]string{"a": hostport(a.Server), "b": hostport(b.Server)}
	tg := startGateway(t, strings.Replace(cfg, "%s", "1h", 1), vars)
	dial := func(share string) *websocket.Conn {
		return dialWSHeader(t, tg, "/change", http.Header{"X-Share": {share}})
	}
	onA, onB := dial("a"), dial("b")
	echo(t, onA, "a")
	echo(t, onB, "b")
	if a.upgrades.Load() != 1 || b.upgrades.Load() != 1 {
		t.Fatalf("upgrades: a %d, b %d; want one each", a.upgrades.Load(), b.upgrades.Load())
	}
	if err := tg.gw.Apply(mustParse(t, strings.Replace(cfg, "%s", "2h", 1), vars)); err != nil {
		t.Fatal(err)
	}
	for name, c := range map[string]*websocket.Conn{"a": onA, "b": onB} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		_, _, err := c.Read(ctx)
		cancel()
		if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
			t.Errorf("tunnel on share %s of the changed route: %v, want a 1001 close", name, err)
		}
	}
}
