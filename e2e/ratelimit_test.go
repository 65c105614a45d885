package e2e

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

// TestRateLimitRedisTwoProcesses: two sluice processes (the built binary) share one Redis
// rate limit of 40 per hour (GCRA, burst 39, keyed by a header); 32 clients send 800
// requests through both at once, half to each; together they admit exactly 40, and each
// process's admin metrics count its share. The limit fails closed, with a timeout only a
// hang reaches (as in the gateway's TestRateLimitRedisTwoGateways): with the default (allow,
// 2 s) a Redis call slow on a loaded machine would be admitted by the policy, not by Redis,
// and the count would prove nothing about Redis. A wrong count prints each process's limit
// metrics (fail_closed and redis_errors say whether Redis was slow).
func TestRateLimitRedisTwoProcesses(t *testing.T) {
	rs := testutil.StartRedis(t)
	backend := okBackend(t)
	var procs []string
	var admins []string
	for range 2 {
		listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
		path := configFile(t, fmt.Sprintf(`
listeners: [{address: %q}]
upstreams: [{id: b, targets: [{address: %q}]}]
routes:
  - id: api
    upstream: b
    plugins:
      - name: rate-limit
        config:
          name: api-per-key
          key: ["header:X-Api-Key"]
          algorithm: gcra
          limit: 1
          window: 1h
          burst: 39
          policy: redis
          on_redis_error: deny
          redis: {address: %q, timeout: 10s}
admin: {address: %q}
log: {level: warn, access: "off"}
`, listen, backend, rs.Addr(), admin))
		start(t, "run", "-c", path)
		url := "http://" + listen
		testutil.WaitFor(t, 10*time.Second, "gateway to serve", func() bool {
			code, _, _, err := get(url + "/other-key-warmup")
			return err == nil && code == 200
		})
		procs, admins = append(procs, url), append(admins, admin)
	}

	var ok, limited, other atomic.Int64
	var wg sync.WaitGroup
	for i := range 32 {
		url := procs[i%2]
		wg.Go(func() {
			c := &http.Client{Timeout: 30 * time.Second} // past the Redis timeout: its 503 is seen
			for range 25 {
				req, _ := http.NewRequest("GET", url+"/x", nil)
				req.Header.Set("X-Api-Key", "tenant-7")
				resp, err := c.Do(req)
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
	wg.Wait()
	// Each process counted its own decisions; the sum is the limit.
	sum := 0.0
	var stats []string
	for i, a := range admins {
		_, _, body, err := get("http://" + a + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(body, "\n") {
			if strings.HasPrefix(line, "sluice_ratelimit_") {
				stats = append(stats, fmt.Sprintf("process %d: %s", i, line))
			}
			var v float64
			if _, err := fmt.Sscanf(line, `sluice_ratelimit_decisions_total{limit="api-per-key",plugin="rate-limit",result="admitted"} %g`, &v); err == nil {
				sum += v
			}
		}
	}
	if ok.Load() != 40 || limited.Load() != 760 || other.Load() != 0 {
		t.Fatalf("two processes admitted %d, limited %d, other %d; want exactly 40, 760, 0\nlimit metrics:\n%s",
			ok.Load(), limited.Load(), other.Load(), strings.Join(stats, "\n"))
	}
	if sum != 40+2 { // plus each process's warm-up request on its own key
		t.Fatalf("admitted per the two processes' metrics: %v, want 42\nlimit metrics:\n%s", sum, strings.Join(stats, "\n"))
	}
}
