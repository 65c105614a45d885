package gateway

import (
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// namedBackend is a backend that answers with its name in X-Backend and counts requests
// and new connections.
type namedBackend struct {
	*httptest.Server
	name        string
	reqs, conns atomic.Int64
}

func newNamedBackend(t *testing.T, name string) *namedBackend {
	t.Helper()
	nb := &namedBackend{name: name}
	nb.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		nb.reqs.Add(1)
		io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Backend", name)
		io.WriteString(w, name)
	}))
	nb.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			nb.conns.Add(1)
		}
	}
	nb.Start()
	t.Cleanup(nb.Close)
	return nb
}

func (nb *namedBackend) addr() string { return hostport(nb.Server) }

const splitConfig = `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - {id: stable, targets: [{address: "{{stable}}"}]}
  - {id: canary, targets: [{address: "{{canary}}"}]}
  - {id: dark, targets: [{address: "{{dark}}"}]}
routes:
  - id: api
    split:
      upstreams:
        - {upstream: canary, weight: {{cw}}}
        - {upstream: stable, weight: {{sw}}}
        - {upstream: dark, weight: 0}
      sticky: {hash_on: header, key: X-User}
{{extra}}
admin: {address: 127.0.0.1:0}
`

// TestSplitSharesEndToEnd: 10,000 requests through the gateway split 90/10 land within 2
// points of the weights (the rotation is deterministic: in fact within a few requests),
// the weight-0 upstream, whose address refuses connections, gets none and no request
// fails, and the requests are counted per route and upstream.
func TestSplitSharesEndToEnd(t *testing.T) {
	stable, canary := testutil.NewBackend(t, testutil.BackendOptions{}), testutil.NewBackend(t, testutil.BackendOptions{})
	tg := startGateway(t, splitConfig, map[string]string{"stable": stable.Addr(), "canary": canary.Addr(),
		"dark": testutil.RefusingAddr(t), "cw": "10", "sw": "90", "extra": ""})
	c := dialClient(t, tg.addr, "/x")
	defer c.conn.Close()
	const n = 10000
	for i := range n {
		if err := c.roundTrip(); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	s, k := float64(stable.Requests()), float64(canary.Requests())
	if s+k != n {
		t.Fatalf("backends saw %v + %v requests, want %d", s, k, n)
	}
	if share := 100 * k / n; math.Abs(share-10) > 2 {
		t.Errorf("canary got %.2f%% of requests, want 10 ± 2", share)
	}
	t.Logf("stable %v, canary %v", s, k)
	fams, _ := scrape(t, tg.adminURL("/metrics"))
	for up, want := range map[string]float64{"stable": s, "canary": k} {
		if v, _ := fams.value("sluice_requests_total", map[string]string{"route": "api", "upstream": up, "code_class": "2xx"}); v != want {
			t.Errorf("sluice_requests_total{route=api,upstream=%s,code=2xx} = %v, want %v", up, v, want)
		}
	}
	if v, ok := fams.value("sluice_requests_total", map[string]string{"upstream": "dark"}); ok && v != 0 {
		t.Errorf("dark (weight 0) counted %v requests", v)
	}
}

// TestSplitStickyAndReload: a user (X-User) stays on one upstream across requests and
// across a reload that keeps the weights; a reload that changes the weights keeps the
// upstreams' pools (no new backend connection for an upstream whose settings did not
// change) and moves only part of the users.
func TestSplitStickyAndReload(t *testing.T) {
	stable, canary := newNamedBackend(t, "stable"), newNamedBackend(t, "canary")
	vars := map[string]string{"stable": stable.addr(), "canary": canary.addr(), "dark": testutil.RefusingAddr(t), "cw": "20", "sw": "80", "extra": ""}
	tg := startGateway(t, splitConfig, vars)
	c := newClient()
	const users = 300
	served := func() map[int]string {
		t.Helper()
		out := map[int]string{}
		for u := range users {
			req, _ := http.NewRequest("GET", tg.url("/"), nil)
			req.Header.Set("X-User", fmt.Sprintf("user-%d", u))
			r, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, r.Body)
			r.Body.Close()
			out[u] = r.Header.Get("X-Backend")
		}
		return out
	}
	first, again := served(), served()
	onCanary := 0
	for u := range users {
		if first[u] != again[u] {
			t.Fatalf("user-%d on %s, then on %s", u, first[u], again[u])
		}
		if first[u] == "canary" {
			onCanary++
		}
	}
	if onCanary < users/10 || onCanary > users*3/10 {
		t.Errorf("%d of %d users on the canary at weight 20%%", onCanary, users)
	}
	conns := stable.conns.Load() + canary.conns.Load()

	// Same weights, another change (a new route): nobody moves, no new connection.
	vars["extra"] = "  - {id: extra, match: {path: /extra}, upstream: stable}"
	if err := tg.gw.Apply(mustParse(t, splitConfig, vars)); err != nil {
		t.Fatal(err)
	}
	after := served()
	for u := range users {
		if after[u] != first[u] {
			t.Fatalf("user-%d moved from %s to %s in a reload that kept the weights", u, first[u], after[u])
		}
	}
	// New weights: the canary grows to 50%; its users stay, some others join.
	vars["cw"], vars["sw"], vars["extra"] = "50", "50", ""
	if err := tg.gw.Apply(mustParse(t, splitConfig, vars)); err != nil {
		t.Fatal(err)
	}
	grown := served()
	for u := range users {
		if first[u] == "canary" && grown[u] != "canary" {
			t.Fatalf("user-%d left the canary when its weight grew", u)
		}
	}
	if got := stable.conns.Load() + canary.conns.Load(); got != conns {
		t.Errorf("backends accepted %d new connections across the reloads, want 0 (pools kept)", got-conns)
	}
}

// TestSplitFallover: when the canary's only target fails its active checks, its share
// goes to the stable upstream and no request fails.
func TestSplitFallover(t *testing.T) {
	stable := newNamedBackend(t, "stable")
	sick := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(503)
	}))
	t.Cleanup(sick.Close)
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: stable
    targets: [{address: "{{stable}}"}]
  - id: canary
    targets: [{address: "{{sick}}"}]
    health_check:
      active: {interval: 50ms, timeout: 1s, unhealthy_threshold: 1}
routes:
  - id: api
    split:
      upstreams:
        - {upstream: canary, weight: 50}
        - {upstream: stable, weight: 50}
`, map[string]string{"stable": stable.addr(), "sick": hostport(sick)})
	testutil.WaitFor(t, 5*time.Second, "the canary marked down", func() bool {
		return !tg.gw.Current().Upstreams["canary"].HasAvailable(time.Now())
	})
	c := newClient()
	for i := range 200 {
		resp := sendWithID(t, c, "GET", tg.url("/"), nil, fmt.Sprint(i), false)
		mustStatus(t, resp, 200)
	}
	if got := stable.reqs.Load(); got != 200 {
		t.Errorf("stable served %d requests, want all 200", got)
	}
}

// TestSplitPathAllocatesNothing: a split route with a sticky key adds no allocation to
// the proxied request.
func TestSplitPathAllocatesNothing(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	addr := benchGateway(t, fmt.Sprintf(`
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - {id: a, targets: [{address: "%s"}]}
  - {id: b, targets: [{address: "%s"}]}
log: {access: "off"}
admin: {enabled: false}
routes:
  - id: api
    split:
      upstreams: [{upstream: a, weight: 3}, {upstream: b, weight: 1}]
      sticky: {hash_on: header, key: User-Agent}
      rules: [{headers: [{name: X-Canary, present: true}], upstream: b}]
`, rawBackend(t), rawBackend(t)), true)
	c := dialClient(t, addr, "/x")
	defer c.conn.Close()
	if allocs := roundTripAllocs(t, c); allocs >= 0.5 {
		t.Fatalf("%.2f heap allocations per request on a split route, want 0", allocs)
	}
}

// BenchmarkTrafficRoutes compares a plain route, a split route (sticky header, a rule) and
// a mirrored route (the copy's work included) on the same raw backends.
func BenchmarkTrafficRoutes(b *testing.B) {
	be, mb := rawBackend(b), rawBackend(b)
	addr := benchGateway(b, fmt.Sprintf(`
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - {id: a, targets: [{address: "%s"}]}
  - {id: b, targets: [{address: "%s"}]}
  - {id: m, targets: [{address: "%s"}]}
log: {access: "off"}
admin: {enabled: false}
routes:
  - {id: plain, match: {path_prefix: /plain/}, upstream: a}
  - id: split
    match: {path_prefix: /split/}
    split:
      upstreams: [{upstream: a, weight: 9}, {upstream: b, weight: 1}]
      sticky: {hash_on: header, key: X-User}
      rules: [{headers: [{name: X-Canary, present: true}], upstream: b}]
  - {id: mirror, match: {path_prefix: /mirror/}, upstream: a, mirror: {upstream: m}}
`, be, be, mb), false)
	for _, path := range []string{"/plain/x", "/split/x", "/mirror/x"} {
		b.Run(path[1:len(path)-2], func(b *testing.B) { runClient(b, addr, path) })
	}
}

// TestSplitSharesKeepTheirRetryPolicy: each share retries by its own upstream's policy.
// Both backends reset the first try of every request after reading it; the stable
// upstream retries reset_before_response (the GET is idempotent) and answers, the canary's
// policy (attempts: 1) does not, so its requests fail, and each backend saw each request
// as often as its policy says.
func TestSplitSharesKeepTheirRetryPolicy(t *testing.T) {
	resetFirst := func(_ *http.Request, n int) testutil.Fault { return testutil.Fault{Reset: n == 1} }
	stable, canary := testutil.NewFaultBackend(t, resetFirst), testutil.NewFaultBackend(t, resetFirst)
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: stable
    targets: [{address: "{{stable}}"}]
    retry: {attempts: 2, on: [reset_before_response]}
    health_check: {passive: {enabled: false}}
  - id: canary
    targets: [{address: "{{canary}}"}]
    retry: {attempts: 1}
    health_check: {passive: {enabled: false}}
routes:
  - id: api
    split:
      upstreams: [{upstream: stable, weight: 1}, {upstream: canary, weight: 0}]
      rules: [{headers: [{name: X-Canary, present: true}], upstream: canary}]
`, map[string]string{"stable": stable.Addr(), "canary": canary.Addr()})
	c := newClient()
	for i := range 5 {
		id := fmt.Sprintf("s-%d", i)
		mustStatus(t, sendWithID(t, c, "GET", tg.url("/"), nil, id, false), 200)
		if got := stable.Started(id); got != 2 {
			t.Errorf("stable saw %s %d times, want 2 (reset, then retried)", id, got)
		}
		req, _ := http.NewRequest("GET", tg.url("/"), nil)
		req.Header.Set("X-Canary", "1")
		req.Header.Set("X-Request-Id", "c-"+fmt.Sprint(i))
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		wantAnswer(t, resp, 502, "upstream_reset_before_response")
		if got := canary.Started("c-" + fmt.Sprint(i)); got != 1 {
			t.Errorf("canary saw c-%d %d times, want 1 (no retry)", i, got)
		}
	}
}
