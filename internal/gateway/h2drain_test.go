package gateway

import (
	"context"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// TestH2Drain: on shutdown, and on a reload that removes the listener, an HTTP/2 client
// gets the two-step GOAWAY (first with stream id 2^31-1, then with the last stream the
// gateway took), and the streams in flight finish with their responses before the
// connection closes.
func TestH2Drain(t *testing.T) {
	for _, how := range []string{"shutdown", "reload"} {
		t.Run(how, func(t *testing.T) {
			release := make(chan struct{})
			s := startH2(t, false, slowH2Backend(t, release), "{drain_wait: 200ms}")
			r := dialRawH2(t, s)
			r.readSettingsAndAck()
			r.headers(1, true, r.block("GET", "/one"))
			r.headers(3, true, r.block("GET", "/two"))
			waitInflight(t, s.testGateway, 2)
			done := make(chan error, 1)
			go func() {
				switch how {
				case "shutdown":
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					defer cancel()
					done <- s.gw.Shutdown(ctx)
				case "reload":
					done <- s.gw.Apply(mustParse(t, `
listeners: [{address: "localhost:0", name: other}] # another address: the h2 listener is removed
upstreams: [{id: b, targets: [{address: 127.0.0.1:9}]}]
routes: [{id: all, upstream: b}]
`, nil))
				}
			}()
			time.AfterFunc(600*time.Millisecond, func() { close(release) })
			res := r.readAll(5 * time.Second)
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if len(res.goAways) != 2 {
				t.Fatalf("%d GOAWAY frames, want 2", len(res.goAways))
			}
			first, second := res.goAways[0], res.goAways[1]
			if first.LastStreamID != 1<<31-1 || first.ErrCode != http2.ErrCodeNo || second.LastStreamID != 3 || second.ErrCode != http2.ErrCodeNo {
				t.Fatalf("GOAWAYs: (%d, %s) then (%d, %s)", first.LastStreamID, first.ErrCode, second.LastStreamID, second.ErrCode)
			}
			if res.status[1] != "200" || res.status[3] != "200" || !res.ended[1] || !res.ended[3] {
				t.Fatalf("in-flight streams: statuses %v, ended %v, resets %v", res.status, res.ended, res.resets)
			}
			h2Counter(t, s.testGateway, "sluice_http2_goaways_sent_total", map[string]string{"listener": "edge", "code": "NO_ERROR"}, 2)
		})
	}
}

// waitInflight waits until n requests run on the gateway's current generation.
func waitInflight(t *testing.T, tg *testGateway, n int64) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for tg.gw.Current().inflight.Load() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d requests in flight, want %d", tg.gw.Current().inflight.Load(), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
