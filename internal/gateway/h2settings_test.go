package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestH2UpstreamLoweredMaxStreams: an HTTP/2 backend that lowers MAX_CONCURRENT_STREAMS
// mid-connection (16 in its first SETTINGS, 2 in a second one sent when a connection's first
// stream arrives, refusing any stream beyond the limit it had acknowledged) is held to its
// latest word: bursts of GETs and POSTs through the gateway are all answered and run once,
// no stream goes beyond the lowered limit, and the admin view shows every connection's
// lowered limit.
func TestH2UpstreamLoweredMaxStreams(t *testing.T) {
	b, err := testutil.NewRacyH2(testutil.RacyH2Options{MaxConcurrentStreams: 16, LowerMaxStreams: 2,
		Delay: 20 * time.Millisecond, HeaderTableSize: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: racy
    targets: [{address: "{{backend}}"}]
    protocol: h2c
routes:
  - id: all
    upstream: racy
`, map[string]string{"backend": b.Addr()})
	c := newClient()
	get := func(id string, post bool) {
		var body io.Reader
		method := "GET"
		if post {
			method, body = "POST", strings.NewReader("body-"+id)
		}
		req, _ := http.NewRequest(method, tg.url("/r"), body)
		req.Header.Set("X-Test-Id", id)
		resp, err := c.Do(req)
		if err != nil {
			t.Errorf("%s: %v", id, err)
			return
		}
		got, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || !strings.HasPrefix(string(got), "ok "+id+" ") {
			t.Errorf("%s %s: %d %q (%s)", method, id, resp.StatusCode, got, resp.Header.Get("X-Sluice-Error"))
		}
	}
	get("warm", false)
	var ids []string
	for round := range 4 {
		var wg sync.WaitGroup
		for i := range 12 {
			id := fmt.Sprintf("r%d-%d", round, i)
			ids = append(ids, id)
			wg.Go(func() { get(id, i%2 == 0) })
		}
		wg.Wait()
	}
	for _, id := range ids {
		if n := b.Processed(id); n != 1 {
			t.Errorf("%s processed %d times; want 1", id, n)
		}
	}
	if n := b.OverLimit.Load(); n != 0 {
		t.Errorf("%d streams went beyond the lowered limit the gateway had acknowledged", n)
	}
	if n := b.BadBodies.Load(); n != 0 {
		t.Errorf("%d POST bodies arrived wrong", n)
	}
	testutil.WaitFor(t, 5*time.Second, "every connection's lowered limit in the admin view", func() bool {
		ts, _ := adminView{tg.gw}.Targets("racy")
		if len(ts) != 1 || ts[0].H2 == nil || len(ts[0].H2.Conns) == 0 {
			return false
		}
		for _, ci := range ts[0].H2.Conns {
			if ci.MaxConcurrentStreams != 2 {
				return false
			}
		}
		return true
	})
	t.Logf("%d requests on %d connections, peak %d streams on one", len(ids)+1, b.Accepted.Load(), b.PeakStreams.Load())
}
