package gateway

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"sluice/internal/config"
	"sluice/internal/proxy"
	"sluice/internal/testutil"
)

const changeConfig = `
listeners: [{address: 127.0.0.1:0}]
shutdown_grace: 2s
upstreams:
  - id: keep
    targets: [{address: "{{keep}}"}]
  - id: other
    targets: [{address: "{{other}}"}]
    keepalive: {max_idle: {{max_idle}}}
routes:
  - {id: a, match: {path_prefix: /a}, upstream: keep}
  - {id: b, match: {path_prefix: /b}, upstream: keep, rewrite: {add_prefix: "{{b_prefix}}"}}
  - {id: c, match: {path_prefix: /c}, upstream: other}
`

// TestApplyChangeKeepsUntouched: ApplyChange builds only what a change touches. The
// untouched upstream keeps its *upstream.Upstream and its warm pool, which stays open and
// reused after the old generation is retired (the new generation took its own reference);
// the untouched route on it keeps its *proxy.Route; the changed route, the changed upstream
// and the route on the changed upstream are new and serve the change. With a stale "from"
// it builds everything, as Apply does.
func TestApplyChangeKeepsUntouched(t *testing.T) {
	keepBE := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	otherBE := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	vars := map[string]string{"keep": keepBE.Addr(), "other": otherBE.Addr(), "max_idle": "8", "b_prefix": "/v1"}
	tg := startGateway(t, changeConfig, vars)
	c := newClient()
	body := func(path string) string {
		t.Helper()
		resp, err := c.Get(tg.url(path))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		mustStatus(t, resp, http.StatusOK)
		return string(b)
	}
	route := func(id string) *proxy.Route {
		for _, rt := range tg.gw.Current().Routes {
			if rt.ID == id {
				return rt
			}
		}
		t.Fatalf("no route %q", id)
		return nil
	}
	body("/a")
	gen := tg.gw.Current()
	keepU, otherU, a, b, cr := gen.Upstreams["keep"], gen.Upstreams["other"], route("a"), route("b"), route("c")
	keepPool := keepU.Current().Targets[0].Pool
	opened := keepPool.Snapshot().Counters.Opened

	vars["max_idle"], vars["b_prefix"] = "4", "/v2"
	next := mustParse(t, changeConfig, vars)
	ch := config.Change{Upstreams: []config.Upstream{*next.UpstreamByID("other")}, Routes: []*config.Route{next.Routes[1]}}
	if err := tg.gw.ApplyChange(gen.Config, next, ch); err != nil {
		t.Fatal(err)
	}
	now := tg.gw.Current()
	if now.Upstreams["keep"] != keepU || route("a") != a {
		t.Error("the untouched upstream or the untouched route on it was built again")
	}
	if now.Upstreams["other"] == otherU || route("b") == b || route("c") == cr {
		t.Error("the changed upstream, the changed route or the route on the changed upstream was kept")
	}
	if got := body("/b/x"); !strings.Contains(got, "/v2/b/x") {
		t.Errorf("the changed route serves %s, want /v2/b/x", got)
	}
	otherPool := otherU.Current().Targets[0].Pool // replaced: closed when the old generation is retired
	testutil.WaitFor(t, 5*time.Second, "the old generation to be retired", func() bool { return otherPool.Snapshot().Closed })
	body("/a")
	if s := keepPool.Snapshot(); s.Closed || s.Counters.Opened != opened {
		t.Errorf("the kept upstream's pool after the old generation was retired: closed %v, opened %d -> %d; want it open and its connection reused",
			s.Closed, opened, s.Counters.Opened)
	}

	// A change computed against a config that is not serving any more: built whole.
	if err := tg.gw.ApplyChange(gen.Config, mustParse(t, changeConfig, vars), ch); err != nil {
		t.Fatal(err)
	}
	if tg.gw.Current().Upstreams["keep"] == keepU {
		t.Error("a change from a config no longer serving kept an upstream")
	}
	body("/a")
}

const changeTrafficConfig = `
listeners: [{address: 127.0.0.1:0}]
shutdown_grace: 2s
upstreams:
  - id: keep
    targets: [{address: "{{keep}}"}]
  - id: other
    targets: [{address: "{{other}}"}]
routes:
  - {id: a, match: {path_prefix: /a}, upstream: keep, rewrite: {add_prefix: "{{a_prefix}}"}}
  - {id: s, match: {path_prefix: /s}, split: {upstreams: [{upstream: keep, weight: 1}, {upstream: other, weight: 1}]}}
  - {id: m, match: {path_prefix: /m}, upstream: keep, mirror: {upstream: other, percent: 100}}
`

// TestApplyChangeRebuildsTrafficRoutes: a route with a split or a mirror is built anew by
// every change, even one that touches neither it nor its upstreams: building its shares and
// mirror sets them on the route (buildTraffic), which must never reach a route the serving
// generation still uses. Both keep serving after the change, and the mirror keeps copying.
func TestApplyChangeRebuildsTrafficRoutes(t *testing.T) {
	keepBE := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	otherBE := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	vars := map[string]string{"keep": keepBE.Addr(), "other": otherBE.Addr(), "a_prefix": "/v1"}
	tg := startGateway(t, changeTrafficConfig, vars)
	c := newClient()
	get := func(path string) {
		t.Helper()
		resp, err := c.Get(tg.url(path))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		mustStatus(t, resp, http.StatusOK)
	}
	route := func(id string) *proxy.Route {
		for _, rt := range tg.gw.Current().Routes {
			if rt.ID == id {
				return rt
			}
		}
		t.Fatalf("no route %q", id)
		return nil
	}
	get("/s/1")
	get("/m/1")
	gen := tg.gw.Current()
	s, m := route("s"), route("m")
	vars["a_prefix"] = "/v2"
	next := mustParse(t, changeTrafficConfig, vars)
	if err := tg.gw.ApplyChange(gen.Config, next, config.Change{Routes: []*config.Route{next.Routes[0]}}); err != nil {
		t.Fatal(err)
	}
	if route("s") == s || route("m") == m {
		t.Error("a split or mirror route was kept from the serving generation")
	}
	before := otherBE.Requests()
	for i := range 4 {
		get("/s/" + string(rune('a'+i)))
		get("/m/" + string(rune('a'+i)))
	}
	testutil.WaitFor(t, 5*time.Second, "the split's other share and the mirror to reach the other backend",
		func() bool { return otherBE.Requests()-before >= 6 })
}

// TestApplyChangeKeepsChains: after a one-route change the untouched routes keep their
// plugin chains (the same objects) and the route table was updated, not compiled: every
// route still matches, and the kept chains keep serving after the old generation was
// retired (closing it must not close instances the new one holds).
func TestApplyChangeKeepsChains(t *testing.T) {
	be := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	tg := startGateway(t, changeBenchConfig(be.Addr(), 30), nil)
	gen := tg.gw.Current()
	from := gen.Config
	next := *from
	next.Routes = slices.Clone(from.Routes)
	rc := *next.Routes[7] // a copy: from's route is not modified (from is serving)
	rc.Rewrite.AddPrefix = "/v2"
	next.Routes[7] = &rc
	if err := tg.gw.ApplyChange(from, &next, config.Change{Routes: []*config.Route{&rc}}); err != nil {
		t.Fatal(err)
	}
	now := tg.gw.Current()
	if now.Plugins.Chain(10) == nil || now.Plugins.Chain(10) != gen.Plugins.Chain(10) || now.Plugins.Chain(20) != gen.Plugins.Chain(20) {
		t.Error("an untouched route's plugin chain was built again")
	}
	testutil.WaitFor(t, 5*time.Second, "the old generation to be retired", func() bool { return gen.Plugins.Chain(10) != nil && now.Routes[7] != gen.Routes[7] })
	time.Sleep(100 * time.Millisecond)
	c := newClient()
	for _, i := range []int{0, 7, 10, 29} {
		resp, err := c.Get(tg.url(fmt.Sprintf("/r%05d/x", i)))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		mustStatus(t, resp, http.StatusOK)
		if want := i%10 == 0; (resp.Header.Get("X-R") == "r") != want {
			t.Errorf("route %d: X-R %q, want the plugin's header: %v", i, resp.Header.Get("X-R"), want)
		}
		if i == 7 && !strings.Contains(string(b), "/v2/r00007/x") {
			t.Errorf("the changed route serves %s", b)
		}
	}
}

// TestApplyChangeMovesMatches: a change that moves one route's match, adds a route and
// removes another is served exactly as a whole config would be: the moved route answers on
// its new prefix and no longer on its old one, the new route answers, the removed one is
// 404 no_route, and untouched routes on both sides of them still answer.
func TestApplyChangeMovesMatches(t *testing.T) {
	be := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	tg := startGateway(t, changeBenchConfig(be.Addr(), 30), nil)
	from := tg.gw.Current().Config
	next := *from
	next.Routes = slices.Clone(from.Routes)
	moved := *next.Routes[7] // copies: from's routes are not modified (from is serving)
	moved.Match.PathPrefix = "/moved"
	moved.Rewrite.AddPrefix = "/seven"
	next.Routes[7] = &moved
	added := *next.Routes[3]
	added.ID, added.Match.PathPrefix, added.Plugins = "added", "/added", nil
	added.Rewrite.AddPrefix = "/new"
	removed := next.Routes[12].ID
	next.Routes = slices.Delete(next.Routes, 12, 13)
	next.Routes = slices.Insert(next.Routes, 20, &added)
	ch := config.Change{Routes: []*config.Route{&moved, &added}, RemovedRoutes: []string{removed}}
	if err := tg.gw.ApplyChange(from, &next, ch); err != nil {
		t.Fatal(err)
	}
	c := newClient()
	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(tg.url(path))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp, string(b)
	}
	for _, tc := range []struct {
		path, body string // body: what the backend must have seen; "" for a 404
	}{
		{"/moved/x", "/seven/moved/x"},
		{"/r00007/x", ""},
		{"/added/x", "/new/added/x"},
		{"/r00012/x", ""},
		{"/r00000/x", "/r00000/x"},
		{"/r00011/x", "/r00011/x"},
		{"/r00013/x", "/r00013/x"},
		{"/r00029/x", "/r00029/x"},
	} {
		resp, body := get(tc.path)
		if tc.body == "" {
			wantAnswer(t, resp, http.StatusNotFound, "no_route")
			continue
		}
		mustStatus(t, resp, http.StatusOK)
		if !strings.Contains(body, tc.body) {
			t.Errorf("%s: the backend saw %s, want %s", tc.path, body, tc.body)
		}
	}
}

// TestApplyChangeSharedRoutes: a change built from the serving config as cluster mode
// builds it (the routes it did not change are the same *config.Route values) keeps those
// routes only when their upstream was kept: route c, untouched but on an upstream the
// change moved to another backend, is built again and its requests reach the new backend;
// routes a and b on the untouched upstream are kept.
func TestApplyChangeSharedRoutes(t *testing.T) {
	keepBE := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	otherBE := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	movedBE := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	vars := map[string]string{"keep": keepBE.Addr(), "other": otherBE.Addr(), "max_idle": "8", "b_prefix": "/v1"}
	tg := startGateway(t, changeConfig, vars)
	gen := tg.gw.Current()
	from := gen.Config
	next := *from // the routes are shared, as a cluster node's next config shares them
	next.Upstreams = slices.Clone(from.Upstreams)
	other := *next.UpstreamByID("other")
	other.Targets = []config.Target{{Address: movedBE.Addr(), Weight: 1}}
	for i := range next.Upstreams {
		if next.Upstreams[i].ID == "other" {
			next.Upstreams[i] = other
		}
	}
	if err := tg.gw.ApplyChange(from, &next, config.Change{Upstreams: []config.Upstream{other}}); err != nil {
		t.Fatal(err)
	}
	now := tg.gw.Current()
	if now.Routes[0] != gen.Routes[0] || now.Routes[1] != gen.Routes[1] {
		t.Error("a route on the untouched upstream was built again")
	}
	if now.Routes[2] == gen.Routes[2] || now.Routes[2].Upstream != now.Upstreams["other"] {
		t.Fatal("the untouched route on the changed upstream was kept")
	}
	c := newClient()
	before := otherBE.Requests()
	for range 3 {
		resp, err := c.Get(tg.url("/c/x"))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		mustStatus(t, resp, http.StatusOK)
	}
	if movedBE.Requests() != 3 || otherBE.Requests() != before {
		t.Errorf("route c's requests: %d to the upstream's new backend, %d to its old one; want 3 and 0",
			movedBE.Requests(), otherBE.Requests()-before)
	}
}
