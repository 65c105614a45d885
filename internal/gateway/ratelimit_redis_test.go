package gateway

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

const redisLimitConfig = `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets:
      - address: {{backend}}
routes:
  - id: shared
    match: {path_prefix: /shared}
    upstream: echo
    plugins:
      - name: rate-limit
        config:
          name: shared
          key: []
          algorithm: gcra
          limit: 1
          window: 1h
          burst: 29
          policy: redis
          on_redis_error: deny
          redis: {address: "{{redis}}", timeout: 10s}
  - id: open
    match: {path_prefix: /open}
    upstream: echo
    plugins:
      - name: rate-limit
        config:
          name: open
          limit: 2
          window: 1h
          policy: redis
          on_redis_error: allow
          redis: {address: "{{redis}}", timeout: 200ms, backoff: 0s}
  - id: closed
    match: {path_prefix: /closed}
    upstream: echo
    plugins:
      - name: rate-limit
        config:
          name: closed
          limit: 2
          window: 1h
          policy: redis
          on_redis_error: deny
          redis: {address: "{{redis}}", timeout: 200ms, backoff: 0s}
`

// TestRateLimitRedisTwoGateways: two gateways (two Gateway instances in this process, each
// with its own Redis connections) share one limit of 30 per hour; 32 clients send 640
// requests through both at once and exactly 30 are admitted. (e2e's
// TestRateLimitRedisTwoProcesses does the same with two sluice processes.) The limit fails
// closed, with a timeout only a hang reaches: with the default (allow, 2 s) a Redis call slow
// on a loaded machine would be admitted by the policy, not by Redis (31 admitted once at a
// load average of 28, nothing logged then), and the count would prove nothing about Redis.
func TestRateLimitRedisTwoGateways(t *testing.T) {
	rs := testutil.StartRedis(t)
	be := echoBackend(t, "b")
	vars := map[string]string{"backend": hostport(be), "redis": rs.Addr()}
	gws := []*testGateway{startGateway(t, redisLimitConfig, vars), startGateway(t, redisLimitConfig, vars)}
	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	for _, tg := range gws {
		for range 16 {
			wg.Go(func() {
				c := newClient()
				for range 20 {
					resp, err := c.Get(tg.url("/shared"))
					if err != nil {
						other.Add(1)
						continue
					}
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					switch resp.StatusCode {
					case 200:
						ok.Add(1)
					case 429:
						limited.Add(1)
					default:
						other.Add(1)
					}
				}
			})
		}
	}
	wg.Wait()
	if ok.Load() != 30 || limited.Load() != 610 || other.Load() != 0 {
		var stats []string
		for _, tg := range gws {
			for _, l := range tg.gw.limitStats() {
				stats = append(stats, fmt.Sprintf("%s: %+v", l.Name, l.Stats))
			}
		}
		t.Fatalf("two gateways admitted %d, limited %d, other %d; want exactly 30, 610, 0\nlimits: %s",
			ok.Load(), limited.Load(), other.Load(), strings.Join(stats, "\n"))
	}
}

// TestRateLimitRedisDown: Redis killed while the gateway serves: on_redis_error allow lets
// requests through (no RateLimit fields: nothing was counted), deny answers 503
// rate_limit_unavailable, each counted in the metrics; when Redis is back, both limit again.
func TestRateLimitRedisDown(t *testing.T) {
	rs := testutil.StartRedis(t)
	be := echoBackend(t, "b")
	tg := startGateway(t, redisLimitConfig, map[string]string{"backend": hostport(be), "redis": rs.Addr()})
	c := newClient()
	send := func(path string) *http.Response {
		t.Helper()
		start := time.Now()
		resp, err := c.Get(tg.url(path))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if took := time.Since(start); took > 2*time.Second {
			t.Fatalf("%s took %v: the wait for Redis is not bounded", path, took)
		}
		return resp
	}
	for _, p := range []string{"/open", "/closed"} {
		wantAnswer(t, send(p), 200, "")
		wantAnswer(t, send(p), 200, "")
		wantAnswer(t, send(p), 429, "rate_limited")
	}

	rs.Stop()
	for range 3 {
		resp := send("/open")
		wantAnswer(t, resp, 200, "")
		if resp.Header.Get("RateLimit-Remaining") != "" {
			t.Fatalf("fail-open answer carries RateLimit fields: %v", resp.Header)
		}
		resp = send("/closed")
		wantAnswer(t, resp, 503, "rate_limit_unavailable")
		if resp.Header.Get("Retry-After") != "1" {
			t.Fatalf("fail-closed 503 Retry-After %q", resp.Header.Get("Retry-After"))
		}
	}
	m := limitMetrics(t, tg)
	if m["open/fail_open"] != 3 || m["closed/fail_closed"] != 3 || m["open/redis_errors"] != 3 || m["closed/redis_errors"] != 3 {
		t.Fatalf("metrics while Redis is down: %v", m)
	}

	rs.Start() // empty: no persistence
	testutil.WaitFor(t, 5*time.Second, "the deny policy's route to serve again", func() bool {
		return send("/closed").StatusCode == 200
	})
	wantAnswer(t, send("/closed"), 200, "")
	wantAnswer(t, send("/closed"), 429, "rate_limited")
	wantAnswer(t, send("/open"), 200, "")
	wantAnswer(t, send("/open"), 200, "")
	wantAnswer(t, send("/open"), 429, "rate_limited")
}
