package gateway

import (
	"fmt"
	"io"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"sluice/internal/config"
	"sluice/internal/testutil"
)

// sharedRoutesConfig has a route for each kind of field a build could be tempted to
// normalise or cache in place: mixed-case hosts, methods and tunnel protocols, header,
// query and split-rule conditions, rewrite maps and lists, retry lists, a path template,
// a split with a sticky key and a mirror, and plugin configs (maps in yaml nodes).
const sharedRoutesConfig = `
listeners: [{address: 127.0.0.1:0}]
shutdown_grace: 2s
log: {access: "off"}
upstreams:
  - id: a
    targets: [{address: "{{a}}"}]
  - id: b
    targets: [{address: "{{b}}"}]
routes:
  - id: hosts
    match: {hosts: [API.Example.COM, "*.Wild.Example.com"], methods: [get, Post], path: "/h/{id}"}
    upstream: a
    tunnel: {protocols: [WebSocket]}
    retry: {on: [connect_failure], statuses: [503]}
  - id: conds
    match: {path_prefix: /c/, headers: [{name: x-flag, exact: "1"}], query: [{name: q, regex: "^v"}]}
    upstream: a
    rewrite:
      strip_prefix: /c
      set_headers: {X-Set: s}
      add_headers: {X-Add: a}
      remove_headers: [X-Drop]
  - id: plug
    match: {path_prefix: /p/}
    upstream: b
    plugins: [{name: response-headers, config: {set: {X-R: r}}}]
  - id: split
    match: {path_prefix: /s/}
    split:
      upstreams: [{upstream: a, weight: 1}, {upstream: b}]
      rules: [{headers: [{name: x-to-b, present: true}], upstream: b}]
      sticky: {hash_on: header, key: X-User}
    mirror: {upstream: b}
  - id: moving
    match: {path_prefix: /m/}
    upstream: a
`

// TestApplyChangeLeavesSharedRoutes guards the rule on config.Config.Routes: a route of a
// config that was handed on is never modified. The serving config's routes are shared,
// as a cluster node's next config shares them, with configs built from it by changes of
// one route (ParseObjects, as the node parses a watched change); the changes are applied
// one after the other while requests run on every route and the routes are rendered as
// the admin views render them. Afterwards every route of the first config, and the shared
// routes of each later one, are still deeply equal to a fresh parse of the same text.
// Under -race, a write into a shared route (a field, or a map or slice inside it)
// during a build is also reported as a race with the requests' and views' reads.
func TestApplyChangeLeavesSharedRoutes(t *testing.T) {
	aBE := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	bBE := testutil.NewBackend(t, testutil.BackendOptions{Echo: true})
	vars := map[string]string{"a": aBE.Addr(), "b": bBE.Addr()}
	tg := startGateway(t, sharedRoutesConfig, vars)
	first := tg.gw.Current().Config
	want := mustParse(t, sharedRoutesConfig, vars).Routes

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { // requests on every route until stop (bounded)
		c := newClient()
		reqs := []func() (*http.Request, error){
			func() (*http.Request, error) {
				r, err := http.NewRequest("POST", tg.url("/h/1"), nil)
				if r != nil {
					r.Host = "api.example.com"
				}
				return r, err
			},
			func() (*http.Request, error) { return http.NewRequest("GET", tg.url("/c/x?q=v1"), nil) },
			func() (*http.Request, error) { return http.NewRequest("GET", tg.url("/p/x"), nil) },
			func() (*http.Request, error) { return http.NewRequest("GET", tg.url("/s/x"), nil) },
			func() (*http.Request, error) { return http.NewRequest("GET", tg.url("/m/x"), nil) },
		}
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			req, err := reqs[i%len(reqs)]()
			if err != nil {
				t.Error(err)
				return
			}
			req.Header.Set("X-Flag", "1")
			resp, err := c.Do(req)
			if err != nil {
				t.Errorf("%s during the changes: %v", req.URL.Path, err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("%s during the changes: status %d", req.URL.Path, resp.StatusCode)
				return
			}
		}
	})
	wg.Go(func() { // the admin views' reading of the serving config (yaml rendering)
		for i := 0; i < 2000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := yaml.Marshal(tg.gw.Current().Config.Routes); err != nil {
				t.Error(err)
				return
			}
		}
	})

	from := first
	var configs []*config.Config
	for i := range 6 {
		objs, err := config.ParseObjects("test.yaml", fmt.Appendf(nil,
			"routes: [{id: moving, match: {path_prefix: /m/}, upstream: a, rewrite: {add_prefix: /v%d}}]\n", i))
		if err != nil {
			t.Fatal(err)
		}
		next := *from
		next.Routes = slices.Clone(from.Routes)
		j := slices.IndexFunc(next.Routes, func(r *config.Route) bool { return r.ID == "moving" })
		next.Routes[j] = objs.Routes[0]
		if err := tg.gw.ApplyChange(from, &next, config.Change{Routes: objs.Routes}); err != nil {
			t.Fatal(err)
		}
		configs = append(configs, from)
		from = &next
		time.Sleep(20 * time.Millisecond)
	}
	close(stop)
	wg.Wait()

	resp, err := newClient().Get(tg.url("/m/x"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), "/v5/m/x") {
		t.Fatalf("the last change is not served: the backend saw %s", b)
	}
	for k, c := range configs {
		for i, r := range c.Routes {
			if r.ID == "moving" && k > 0 {
				continue // each change's own route
			}
			if r != first.Routes[i] {
				t.Fatalf("config %d: route %q is not the first config's object", k, r.ID)
			}
		}
	}
	for i, r := range first.Routes {
		if !reflect.DeepEqual(r, want[i]) {
			t.Errorf("route %q was modified after it was handed on:\n got %+v\nwant %+v", r.ID, *r, *want[i])
		}
	}
}
