package gateway

import (
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"sluice/internal/testutil"
)

func TestUpstreamLimitsAndNoHealthyTarget(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
		io.WriteString(w, "done")
	}))
	defer slow.Close()
	defer close(release)
	dead := testutil.RefusingAddr(t)
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: slow
    targets: [{address: {{slow}}}]
    limits: {max_concurrent_requests: 1}
  - id: dead
    targets: [{address: {{dead}}}]
    health_check:
      active: {type: tcp, interval: 50ms, timeout: 50ms, unhealthy_threshold: 1}
      panic_threshold: 0
routes:
  - id: dead
    match: {path_prefix: /dead}
    upstream: dead
  - id: slow
    upstream: slow
`, map[string]string{"slow": hostport(slow), "dead": dead})
	c := newClient()

	// One request holds the only slot; the next one is refused at once.
	first := make(chan int, 1)
	go func() {
		resp, err := c.Get(tg.url("/hold"))
		if err != nil {
			first <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		first <- resp.StatusCode
	}()
	testutil.WaitFor(t, 3*time.Second, "the first request to hold the slot", func() bool {
		return tg.gw.Current().Upstreams["slow"].Current().Targets[0].InFlight.Load() == 1
	})
	resp, err := c.Get(tg.url("/second"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	mustStatus(t, resp, 503)
	if got := resp.Header.Get("X-Sluice-Error"); got != "upstream_overloaded" {
		t.Errorf("X-Sluice-Error = %q, want upstream_overloaded", got)
	}
	release <- struct{}{}
	if s := <-first; s != 200 {
		t.Errorf("held request ended with %d", s)
	}

	// Once the active check marks the only target unhealthy (and panic mode is off), requests
	// get 503 no_healthy_target without a connection attempt.
	testutil.WaitFor(t, 5*time.Second, "503 no_healthy_target from the dead upstream", func() bool {
		resp, err := c.Get(tg.url("/dead"))
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 503 && resp.Header.Get("X-Sluice-Error") == "no_healthy_target"
	})
}
