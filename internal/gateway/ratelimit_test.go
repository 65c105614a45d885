package gateway

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"sluice/internal/testutil"
)

const rateLimitConfig = `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets:
      - address: {{backend}}
routes:
  - id: by-ip
    match: {path_prefix: /ip}
    upstream: echo
    plugins:
      - name: rate-limit
        config:
          algorithm: fixed_window
          limit: 3
          window: 1h
  - id: by-key
    match: {path_prefix: /key}
    upstream: echo
    plugins:
      - name: rate-limit
        config:
          name: per-key
          key: ["header:X-Api-Key"]
          algorithm: gcra
          limit: 1
          window: 10s
          burst: 1
          headers: ietf
`

// TestRateLimitLocal: a local limit admits its quota with RateLimit fields counting down,
// then answers 429 rate_limited with Retry-After and the fields, logged and counted; keys
// (here a header's values) count apart; the ietf style writes RateLimit-Policy/RateLimit.
func TestRateLimitLocal(t *testing.T) {
	be := echoBackend(t, "b")
	tg := startGateway(t, rateLimitConfig, map[string]string{"backend": hostport(be)})
	c := newClient()
	get := func(path, apiKey string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", tg.url(path), nil)
		if apiKey != "" {
			req.Header.Set("X-Api-Key", apiKey)
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}
	for i := range 3 {
		resp := get("/ip", "")
		wantAnswer(t, resp, 200, "")
		h := resp.Header
		if h.Get("RateLimit-Limit") != "3" || h.Get("RateLimit-Remaining") != strconv.Itoa(2-i) {
			t.Fatalf("request %d: RateLimit-Limit %q Remaining %q", i, h.Get("RateLimit-Limit"), h.Get("RateLimit-Remaining"))
		}
		if reset, _ := strconv.Atoi(h.Get("RateLimit-Reset")); reset < 1 || reset > 3600 {
			t.Fatalf("request %d: RateLimit-Reset %q", i, h.Get("RateLimit-Reset"))
		}
	}
	resp := get("/ip", "")
	wantAnswer(t, resp, 429, "rate_limited")
	if ra, _ := strconv.Atoi(resp.Header.Get("Retry-After")); ra < 1 || ra > 3600 {
		t.Fatalf("Retry-After %q on a 429 of an hour window", resp.Header.Get("Retry-After"))
	}
	if resp.Header.Get("RateLimit-Remaining") != "0" || resp.Header.Get("RateLimit-Limit") != "3" {
		t.Fatalf("429 fields: %v", resp.Header)
	}

	// GCRA 1 per 10s with burst 1: two at once per key, then Retry-After 10s at most.
	for _, k := range []string{"alice", "bob"} {
		for i := range 2 {
			resp := get("/key", k)
			wantAnswer(t, resp, 200, "")
			if got, want := resp.Header.Get("RateLimit"), `"per-key";r=`+strconv.Itoa(1-i); !strings.HasPrefix(got, want) {
				t.Fatalf("%s %d: RateLimit %q, want prefix %q", k, i, got, want)
			}
			if got := resp.Header.Get("RateLimit-Policy"); got != `"per-key";q=2;w=20` {
				t.Fatalf("RateLimit-Policy %q", got)
			}
		}
		resp := get("/key", k)
		wantAnswer(t, resp, 429, "rate_limited")
		if ra := resp.Header.Get("Retry-After"); ra == "" || ra == "0" || len(ra) > 2 {
			t.Fatalf("%s: Retry-After %q", k, ra)
		}
	}

	lines := tg.accessLines(10)
	if l := lines[3]; l["status"] != float64(429) || l["reason"] != "rate_limited" || l["plugin"] != "rate-limit" {
		t.Fatalf("access log of the 429: %v", l)
	}
	want := map[string]float64{"route:by-ip#0/admitted": 3, "route:by-ip#0/limited": 1, "per-key/admitted": 4, "per-key/limited": 2,
		"route:by-ip#0/keys": 1, "per-key/keys": 2}
	got := limitMetrics(t, tg)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("metric %s = %v, want %v (all: %v)", k, got[k], v, got)
		}
	}
}

// limitMetrics returns the gateway's limit metrics as "limit/result" (decisions) and
// "limit/keys".
func limitMetrics(t *testing.T, tg *testGateway) map[string]float64 {
	t.Helper()
	mfs, err := tg.gw.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	label := func(m *dto.Metric, name string) string {
		for _, l := range m.GetLabel() {
			if l.GetName() == name {
				return l.GetValue()
			}
		}
		return ""
	}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			switch mf.GetName() {
			case "sluice_ratelimit_decisions_total":
				out[label(m, "limit")+"/"+label(m, "result")] = m.GetCounter().GetValue()
			case "sluice_ratelimit_keys":
				out[label(m, "limit")+"/keys"] = m.GetGauge().GetValue()
			case "sluice_ratelimit_redis_errors_total":
				out[label(m, "limit")+"/redis_errors"] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

// holdBackend answers /hold requests only when release is closed or a value is sent, and
// counts the requests it holds.
type holdBackend struct {
	srv     *httptest.Server
	release chan struct{}
	held    atomic.Int64
}

func newHoldBackend(t *testing.T) *holdBackend {
	hb := &holdBackend{release: make(chan struct{}, 100)}
	hb.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/fail" {
			panic(http.ErrAbortHandler) // the connection is cut: an upstream failure
		}
		hb.held.Add(1)
		defer hb.held.Add(-1)
		select {
		case <-hb.release:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		io.WriteString(w, "done")
	}))
	t.Cleanup(hb.srv.Close)
	return hb
}

const limitConnConfig = `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: slow
    targets:
      - address: {{backend}}
routes:
  - id: slow
    match: {path_prefix: /}
    upstream: slow
    plugins:
      - name: limit-conn
        config:
          max: 2
`

// TestLimitConnSlowBackend: with 2 requests of a client in flight on a slow backend, a third
// is refused 429 concurrency_limited; places come back when a response ends, when the
// client leaves mid-request, and when the upstream fails.
func TestLimitConnSlowBackend(t *testing.T) {
	hb := newHoldBackend(t)
	tg := startGateway(t, limitConnConfig, map[string]string{"backend": strings.TrimPrefix(hb.srv.URL, "http://")})
	c := newClient()
	var wg sync.WaitGroup
	statuses := make(chan int, 10)
	send := func(ctx context.Context, path string) {
		req, _ := http.NewRequestWithContext(ctx, "GET", tg.url(path), nil)
		resp, err := c.Do(req)
		if err != nil {
			statuses <- 0
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		statuses <- resp.StatusCode
	}
	fillTwo := func(ctx context.Context) {
		t.Helper()
		for range 2 {
			wg.Go(func() { send(ctx, "/hold") })
		}
		testutil.WaitFor(t, 5*time.Second, "2 requests held by the backend", func() bool { return hb.held.Load() == 2 })
	}

	// Two in flight: the third is refused at once.
	fillTwo(context.Background())
	resp, err := c.Get(tg.url("/hold"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wantAnswer(t, resp, 429, "concurrency_limited")
	// Responses end: their places come back.
	hb.release <- struct{}{}
	hb.release <- struct{}{}
	wg.Wait()
	for range 2 {
		if s := <-statuses; s != 200 {
			t.Fatalf("held request: %d", s)
		}
	}

	// A client has its response before the gateway ends the request (the plugins' log phase
	// gives the place back, then the access line is written): wait for the three lines.
	tg.accessLines(3)

	// Clients that leave mid-request (reset their connections) give their places back too.
	var conns []net.Conn
	for range 2 {
		conn, err := net.Dial("tcp", tg.addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(conn, "GET /hold HTTP/1.1\r\nHost: h\r\n\r\n")
		conns = append(conns, conn)
	}
	testutil.WaitFor(t, 5*time.Second, "2 requests held by the backend", func() bool { return hb.held.Load() == 2 })
	for _, conn := range conns {
		conn.(*net.TCPConn).SetLinger(0)
		conn.Close() // RST
	}
	testutil.WaitFor(t, 5*time.Second, "the backend to see the aborted requests end", func() bool { return hb.held.Load() == 0 })
	tg.accessLines(5) // and the gateway to end them (499)

	// Upstream failures (the backend cuts the connection): 502, places back.
	for range 3 {
		resp, err := c.Get(tg.url("/fail"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 502 {
			t.Fatalf("/fail: %d", resp.StatusCode)
		}
	}

	// After all that, 2 places are free again (and no more).
	testutil.WaitFor(t, 5*time.Second, "every place released", func() bool {
		fillTwo(context.Background())
		resp, err := c.Get(tg.url("/hold"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		hb.release <- struct{}{}
		hb.release <- struct{}{}
		wg.Wait()
		<-statuses
		<-statuses
		return resp.StatusCode == 429
	})
	got := limitMetrics(t, tg)
	if got["route:slow#0/limited"] < 2 || got["route:slow#0/admitted"] < 9 {
		t.Errorf("limit-conn metrics: %v", got)
	}
}

// TestRateLimitBadConfig: each bad value is an error naming file:line, the route, the
// plugin and the field; the gateway keeps serving its previous config.
func TestRateLimitBadConfig(t *testing.T) {
	be := echoBackend(t, "b")
	tg := startGateway(t, rateLimitConfig, map[string]string{"backend": hostport(be)})
	head := `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets:
      - address: ` + hostport(be) + `
routes:
  - id: api
    match: {path_prefix: /}
    upstream: echo
    plugins:
`
	tests := []struct {
		name, plugin, want string
	}{
		{"rate 0", "      - name: rate-limit\n        config:\n          limit: 0\n",
			`test.yaml:15: routes[0].plugins[0].config.limit: route "api": plugin rate-limit: must be at least 1`},
		{"negative burst", "      - name: rate-limit\n        config:\n          limit: 5\n          algorithm: gcra\n          burst: -1\n",
			`test.yaml:17: routes[0].plugins[0].config.burst: route "api": plugin rate-limit: must not be negative`},
		{"unknown key kind", "      - name: rate-limit\n        config:\n          limit: 5\n          key: [client_ip, cookie]\n",
			`test.yaml:16: routes[0].plugins[0].config.key[1]: route "api": plugin rate-limit: unknown key kind "cookie"`},
		{"missing redis address", "      - name: rate-limit\n        config:\n          name: api\n          limit: 5\n          policy: redis\n",
			`routes[0].plugins[0].config.redis.address: route "api": plugin rate-limit: is required with policy redis`},
		{"unknown algorithm", "      - name: rate-limit\n        config:\n          limit: 5\n          algorithm: leaky\n",
			`test.yaml:16: routes[0].plugins[0].config.algorithm: route "api": plugin rate-limit: unknown algorithm "leaky"`},
		{"unknown on_redis_error", "      - name: rate-limit\n        config:\n          limit: 5\n          on_redis_error: maybe\n",
			`config.on_redis_error: route "api": plugin rate-limit: unknown on_redis_error "maybe"`},
		{"unknown field", "      - name: rate-limit\n        config:\n          limit: 5\n          rate: 3\n",
			`test.yaml:16: routes[0].plugins[0].config.rate`},
		{"limit-conn max 0", "      - name: limit-conn\n        config:\n          max: 0\n",
			`test.yaml:15: routes[0].plugins[0].config.max: route "api": plugin limit-conn: must be at least 1`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := mustParse(t, head+tc.plugin, nil)
			err := tg.gw.Apply(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Apply error:\n%v\nwant it to contain:\n%s", err, tc.want)
			}
		})
	}
	resp, err := newClient().Get(tg.url("/ip"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("RateLimit-Limit") != "3" {
		t.Fatalf("the previous config does not serve after bad reloads: %d %v", resp.StatusCode, resp.Header)
	}
}

// limitPlugins are the plugin lists the allocation test and the benchmark put on the
// benchmark config's one route: limits that never refuse, so every request is proxied.
var limitPlugins = map[string]string{
	"rate-limit": `
    plugins:
      - name: rate-limit
        config: {limit: 1000000000, window: 1s}
`,
	"rate-limit-gcra+limit-conn": `
    plugins:
      - name: rate-limit
        config: {algorithm: gcra, limit: 1000000, window: 1s, burst: 1000000}
      - name: limit-conn
        config: {max: 1000}
`,
	"rate-limit-redis": `
    plugins:
      - name: rate-limit
        config: {name: bench, limit: 1000000000, window: 1s, policy: redis, redis: {address: "{{redis}}", timeout: 1s}}
`,
}

// TestRateLimitProxyPathAllocatesNothing: a local rate limit (and limit-conn with it) keeps
// the proxied request at 0 heap allocations: the key is built in a stack buffer, looked up
// without a copy, and the RateLimit fields are formatted into the response head's buffer.
func TestRateLimitProxyPathAllocatesNothing(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	be := rawBackend(t)
	for _, name := range []string{"rate-limit", "rate-limit-gcra+limit-conn"} {
		t.Run(name, func(t *testing.T) {
			addr := benchGateway(t, benchConfig(be, 1)+limitPlugins[name], true)
			c := dialClient(t, addr, "/svc19/items")
			defer c.conn.Close()
			if allocs := roundTripAllocs(t, c); allocs >= 0.5 {
				t.Fatalf("%.2f heap allocations per proxied request with %s, want 0", allocs, name)
			}
		})
	}
}

// BenchmarkRateLimitProxyPath is BenchmarkProxyPath's one-route case with limits that never
// refuse, side by side with no plugin: the cost of a limit on the proxied path.
//
//	go test ./internal/gateway -run '^$' -bench RateLimitProxyPath -benchmem -count 3
func BenchmarkRateLimitProxyPath(b *testing.B) {
	be := benchBackend(b)
	redisAddr := testutil.StartRedis(b).Addr()
	for _, name := range []string{"none", "rate-limit", "rate-limit-gcra+limit-conn", "rate-limit-redis"} {
		b.Run(name, func(b *testing.B) {
			yaml := benchConfig(be, 1) + strings.ReplaceAll(limitPlugins[name], "{{redis}}", redisAddr)
			runClient(b, benchGateway(b, yaml, false), "/svc19/items")
		})
	}
}

const consumerLimitConfig = `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets:
      - address: {{backend}}
consumers:
  - name: alice
    credentials:
      key-auth: {keys: ["alice-key-0123456789"]}
  - name: bob
    credentials:
      key-auth: {keys: ["bob-key-0123456789ab"]}
plugins:
  - name: key-auth
  - name: rate-limit
    config:
      key: [consumer, route]
      limit: 2
      window: 1h
routes:
  - id: a
    match: {path_prefix: /a}
    upstream: echo
  - id: b
    match: {path_prefix: /b}
    upstream: echo
`

// TestRateLimitConsumerKey: a global limit keyed by consumer and route (it runs after
// key-auth whatever the order written): each consumer has 2 per route; another consumer,
// or another route, counts apart.
func TestRateLimitConsumerKey(t *testing.T) {
	be := echoBackend(t, "b")
	tg := startGateway(t, consumerLimitConfig, map[string]string{"backend": hostport(be)})
	c := newClient()
	send := func(path, key string) int {
		t.Helper()
		req, _ := http.NewRequest("GET", tg.url(path), nil)
		req.Header.Set("apikey", key)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	alice, bob := "alice-key-0123456789", "bob-key-0123456789ab"
	for i, tc := range []struct {
		path, key string
		want      int
	}{
		{"/a", alice, 200}, {"/a", alice, 200}, {"/a", alice, 429},
		{"/b", alice, 200}, {"/a", bob, 200}, {"/b", alice, 200}, {"/b", alice, 429}, {"/a", bob, 200}, {"/a", bob, 429},
	} {
		if got := send(tc.path, tc.key); got != tc.want {
			t.Fatalf("request %d (%s %s): %d, want %d", i, tc.path, tc.key[:5], got, tc.want)
		}
	}
	if m := limitMetrics(t, tg); m["global#1/keys"] != 3 || m["global#1/limited"] != 3 {
		t.Fatalf("metrics: %v", m)
	}
}

// TestRateLimitSurvivesReload: a reload that leaves a local limit unchanged keeps its
// counts (otherwise every reload would hand every client a fresh allowance); one that
// changes the limit starts it afresh.
func TestRateLimitSurvivesReload(t *testing.T) {
	be := echoBackend(t, "b")
	vars := map[string]string{"backend": hostport(be)}
	tg := startGateway(t, rateLimitConfig, vars)
	c := newClient()
	status := func() int {
		t.Helper()
		resp, err := c.Get(tg.url("/ip"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}
	for range 3 {
		if s := status(); s != 200 {
			t.Fatalf("status %d", s)
		}
	}
	if err := tg.gw.Apply(mustParse(t, rateLimitConfig, vars)); err != nil {
		t.Fatal(err)
	}
	if s := status(); s != 429 {
		t.Fatalf("after a reload with the same limit: %d, want 429 (the count was lost)", s)
	}
	if err := tg.gw.Apply(mustParse(t, strings.Replace(rateLimitConfig, "limit: 3", "limit: 5", 1), vars)); err != nil {
		t.Fatal(err)
	}
	if s := status(); s != 200 {
		t.Fatalf("after a reload that changed the limit: %d, want 200 (a new limit counts afresh)", s)
	}
}
