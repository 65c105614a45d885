package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// adminConfig has two keep-alive upstreams: "adv" advertises "timeout=2"; "closing" answers
// every second request with "Connection: close", so its pool has closed-connection records.
const adminConfig = `
listeners:
  - address: 127.0.0.1:0
    name: public
upstreams:
  - id: adv
    targets: [{address: "{{adv}}", weight: 3}]
  - id: closing
    targets: [{address: "{{closing}}"}]
routes:
  - id: api
    match: {path_prefix: /api/}
    upstream: adv
  - id: close
    match: {path_prefix: /close/}
    upstream: closing
admin:
  address: 127.0.0.1:0
`

// getJSON GETs url with the given headers and decodes a JSON object.
func getJSON(t *testing.T, url string, header map[string]string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("GET %s: Content-Type %q, want application/json (body %s)", url, ct, body)
	}
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("GET %s: %v: %s", url, err, body)
	}
	return resp.StatusCode, m
}

// at walks a decoded JSON value along path ("targets.0.address").
func at(t *testing.T, v any, path string) any {
	t.Helper()
	for _, k := range strings.Split(path, ".") {
		switch x := v.(type) {
		case map[string]any:
			v = x[k]
		case []any:
			var i int
			if _, err := fmt.Sscan(k, &i); err != nil || i >= len(x) {
				t.Fatalf("%s: no element %s in %d", path, k, len(x))
			}
			v = x[i]
		default:
			t.Fatalf("%s: cannot index %T with %q", path, v, k)
		}
	}
	return v
}

func startAdminGateway(t *testing.T) (*testGateway, *testutil.Backend) {
	adv := testutil.AdvertisingCloser(t, 2, 2*time.Second)
	closing := testutil.NewBackend(t, testutil.BackendOptions{CloseAfter: 2})
	tg := startGateway(t, adminConfig, map[string]string{"adv": adv.Addr(), "closing": closing.Addr()})
	c := newClient()
	for i := 0; i < 4; i++ {
		mustStatus(t, get(t, c, tg.url("/api/x")), 200)
		mustStatus(t, get(t, c, tg.url("/close/x")), 200)
	}
	return tg, adv
}

func TestAdminEndpoints(t *testing.T) {
	tg, adv := startAdminGateway(t)
	cfg := tg.gw.Current().Config
	type field struct {
		path string
		want any // a value, or a func(any) bool for a property
	}
	positive := func(v any) bool { f, ok := v.(float64); return ok && f > 0 }
	nonEmpty := func(v any) bool { s, ok := v.(string); return ok && s != "" }
	tests := []struct {
		name   string
		path   string
		status int
		fields []field
	}{
		{name: "status", path: "/admin/status", status: 200, fields: []field{
			{"version", "dev"},
			{"config.version", cfg.Hash},
			{"config.file", "test.yaml"},
			{"listeners.0.name", "public"},
			{"listeners.0.address", "127.0.0.1:0"},
			{"listeners.0.bound", tg.addr},
			{"admin.address", "127.0.0.1:0"},
			{"admin.bound", tg.gw.AdminAddr().String()},
			{"uptime_seconds", positive},
			{"started", nonEmpty},
			{"generation_created", nonEmpty},
		}},
		{name: "config", path: "/admin/config", status: 200, fields: []field{
			{"version", cfg.Hash},
			{"file", "test.yaml"},
			{"config.routes.0.id", "api"},
			{"config.upstreams.0.keepalive.idle_timeout", "1m0s"},
			{"config.listeners.0.read_header_timeout", "10s"},
			{"config.admin.api_key", ""},
		}},
		{name: "routes", path: "/admin/routes", status: 200, fields: []field{
			{"version", cfg.Hash},
			{"routes.0.id", "api"},
			{"routes.0.match.path_prefix", "/api/"},
			{"routes.1.upstream", "closing"},
		}},
		{name: "upstreams", path: "/admin/upstreams", status: 200, fields: []field{
			{"upstreams.0.id", "adv"},
			{"upstreams.0.balancer.policy", "round_robin"},
			{"upstreams.0.targets.0.address", adv.Addr()},
			{"upstreams.0.targets.0.weight", 3.0},
			{"upstreams.0.targets.0.health", "unknown"},
			{"upstreams.0.targets.0.in_flight", 0.0},
			{"upstreams.0.targets.0.idle_connections", 1.0},
			{"upstreams.0.targets.0.learned_idle_timeout_seconds", 2.0},
			{"upstreams.1.id", "closing"},
		}},
		{name: "pool", path: "/admin/upstreams/adv/pool", status: 200, fields: []field{
			{"upstream", "adv"},
			{"targets.0.address", adv.Addr()},
			{"targets.0.weight", 3.0},
			{"targets.0.health", "unknown"},
			{"targets.0.learned_idle_timeout_seconds", 2.0},
			{"targets.0.learned_source", "header"},
			{"targets.0.effective_idle_timeout_seconds", 1.7},
			{"targets.0.reuse_factor", 1.0},
			{"targets.0.options.idle_timeout_seconds", 60.0},
			{"targets.0.counters.opened", 1.0},
			{"targets.0.counters.reused", 3.0},
			{"targets.0.connections.0.state", "idle"},
			{"targets.0.connections.0.requests_served", 4.0},
			{"targets.0.connections.0.age_seconds", positive},
			{"targets.0.connections.0.idle_age_seconds", positive},
		}},
		{name: "pool with closed connections", path: "/admin/upstreams/closing/pool", status: 200, fields: []field{
			{"targets.0.counters.opened", 2.0},
			{"targets.0.counters.closed_by.backend_close", 2.0},
			{"targets.0.recent_closed.0.reason", "backend_close"},
			{"targets.0.recent_closed.0.requests_served", 2.0},
			{"targets.0.recent_closed.1.reason", "backend_close"},
			{"targets.0.recent_closed.0.lifetime_seconds", positive},
		}},
		{name: "unknown upstream", path: "/admin/upstreams/nope/pool", status: 404, fields: []field{
			{"error", "not_found"},
			{"message", `no upstream "nope" in the serving config`},
		}},
		{name: "unknown endpoint", path: "/admin/nothing", status: 404, fields: []field{
			{"error", "not_found"},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body := getJSON(t, tg.adminURL(tc.path), nil)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, body)
			}
			for _, f := range tc.fields {
				got := at(t, body, f.path)
				if pred, ok := f.want.(func(any) bool); ok {
					if !pred(got) {
						t.Errorf("%s = %#v: unexpected", f.path, got)
					}
				} else if got != f.want {
					t.Errorf("%s = %#v, want %#v", f.path, got, f.want)
				}
			}
		})
	}
	t.Run("metrics", func(t *testing.T) {
		_, text := scrape(t, tg.adminURL("/metrics"))
		if !strings.Contains(text, `sluice_requests_total{code_class="2xx",route="api",upstream="adv"} 4`) {
			t.Errorf("/metrics lacks the api requests:\n%s", text)
		}
	})
}

func TestAdminAPIKey(t *testing.T) {
	const key = "test-key-0123456789abcdef"
	be := echoBackend(t, "a")
	yaml, vars := basicConfig(hostport(be))
	consumers := "consumers: [{name: c, credentials: {key-auth: {keys: [consumer-key-0123456789]}}}]\n"
	tg := startGateway(t, yaml+consumers+"admin: {address: \"127.0.0.1:0\", api_key: "+key+"}\n", vars)
	tests := []struct {
		name   string
		path   string
		header map[string]string
		want   int
	}{
		{name: "no key", path: "/admin/status", want: 401},
		{name: "no key on metrics", path: "/metrics", want: 401},
		{name: "no key on unknown path", path: "/x", want: 401},
		{name: "wrong bearer", path: "/admin/status", header: map[string]string{"Authorization": "Bearer wrong"}, want: 401},
		{name: "key prefix", path: "/admin/status", header: map[string]string{"X-API-Key": key[:10]}, want: 401},
		{name: "basic scheme", path: "/admin/status", header: map[string]string{"Authorization": "Basic " + key}, want: 401},
		{name: "bearer", path: "/admin/status", header: map[string]string{"Authorization": "Bearer " + key}, want: 200},
		{name: "bearer lower case", path: "/admin/routes", header: map[string]string{"Authorization": "bearer " + key}, want: 200},
		{name: "x-api-key", path: "/admin/upstreams", header: map[string]string{"X-API-Key": key}, want: 200},
		{name: "metrics with key", path: "/metrics", header: map[string]string{"X-API-Key": key}, want: 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tg.adminURL(tc.path), nil)
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.want {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.want, body)
			}
			if tc.want == 401 {
				var m map[string]any
				if err := json.Unmarshal(body, &m); err != nil || m["error"] != "unauthorized" {
					t.Errorf("401 body = %s, want a JSON error \"unauthorized\"", body)
				}
				if resp.Header.Get("WWW-Authenticate") == "" {
					t.Error("401 without WWW-Authenticate")
				}
			}
		})
	}
	t.Run("config redacts the key", func(t *testing.T) {
		_, body := getJSON(t, tg.adminURL("/admin/config"), map[string]string{"X-API-Key": key})
		if got := at(t, body, "config.admin.api_key"); got != "<redacted>" {
			t.Errorf("config.admin.api_key = %v, want <redacted>", got)
		}
		if got := at(t, body, "config.consumers.0.credentials.key-auth"); got != "<redacted>" {
			t.Errorf("consumer credentials = %v, want <redacted>", got)
		}
	})
}

// TestAdminFollowsReload: the admin listener rebinds on an address change, picks up a new
// key, closes when disabled, comes back when enabled, and stops on Shutdown.
func TestAdminFollowsReload(t *testing.T) {
	const key = "reload-key-0123456789abcdef"
	be := echoBackend(t, "a")
	base, vars := basicConfig(hostport(be))
	tg := startGateway(t, base+"admin: {address: \"127.0.0.1:0\"}\n", vars)
	apply := func(admin string) {
		t.Helper()
		if err := tg.gw.Apply(mustParse(t, base+admin, vars)); err != nil {
			t.Fatalf("apply %q: %v", admin, err)
		}
	}
	first := tg.gw.AdminAddr().String()

	apply("admin: {address: \"127.0.0.1:0\"}\nshutdown_grace: 1s\n")
	if got := tg.gw.AdminAddr().String(); got != first {
		t.Fatalf("admin rebound on a reload that kept its address: %s -> %s", first, got)
	}

	free := testutil.FreeAddr(t)
	apply(fmt.Sprintf("admin: {address: %q}\n", free))
	if got := tg.gw.AdminAddr().String(); got != free {
		t.Fatalf("admin address = %s, want %s", got, free)
	}
	if !testutil.DialRefused(t, first) {
		t.Errorf("old admin address %s still accepts connections", first)
	}
	if status, _ := getJSON(t, tg.adminURL("/admin/status"), nil); status != 200 {
		t.Fatalf("status %d on the new admin address", status)
	}

	apply(fmt.Sprintf("admin: {address: %q, api_key: %s}\n", free, key))
	if status, _ := getJSON(t, tg.adminURL("/admin/status"), nil); status != 401 {
		t.Errorf("status %d without the new key, want 401", status)
	}
	if status, _ := getJSON(t, tg.adminURL("/admin/status"), map[string]string{"X-API-Key": key}); status != 200 {
		t.Errorf("status %d with the new key, want 200", status)
	}

	apply("admin: {enabled: false}\n")
	if a := tg.gw.AdminAddr(); a != nil {
		t.Fatalf("admin still running at %s after enabled: false", a)
	}
	if !testutil.DialRefused(t, free) {
		t.Errorf("disabled admin address %s still accepts connections", free)
	}

	const lastKey = "last-key-only-this-gateway-has-0123"
	apply(fmt.Sprintf("admin: {address: \"127.0.0.1:0\", api_key: %s}\n", lastKey))
	last := tg.gw.AdminAddr()
	if last == nil {
		t.Fatal("admin did not come back when enabled again")
	}
	tg.gw.Shutdown(t.Context())
	if tg.gw.AdminAddr() != nil || answersWithKey(last.String(), lastKey) {
		t.Errorf("admin listener %s still open after Shutdown", last)
	}
}

// answersWithKey reports whether an admin API that accepts key answers at addr. The port of a
// closed listener may be taken at once by another process on the machine (other test
// packages run at the same time), so a connection alone proves nothing.
func answersWithKey(addr, key string) bool {
	req, _ := http.NewRequest("GET", "http://"+addr+"/admin/status", nil)
	req.Header.Set("X-API-Key", key)
	c := &http.Client{Timeout: time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// TestAdminBindFailureKeepsServing: an admin address that cannot be bound does not refuse
// the config; client traffic is served and a later reload binds the admin listener.
func TestAdminBindFailureKeepsServing(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	be := echoBackend(t, "a")
	base, vars := basicConfig(hostport(be))
	tg := startGateway(t, base+fmt.Sprintf("admin: {address: %q}\n", taken.Addr()), vars)
	if a := tg.gw.AdminAddr(); a != nil {
		t.Fatalf("admin bound to %s, an address already taken", a)
	}
	mustStatus(t, get(t, newClient(), tg.url("/")), 200)
	if err := tg.gw.Apply(mustParse(t, base+"admin: {address: \"127.0.0.1:0\"}\n", vars)); err != nil {
		t.Fatal(err)
	}
	if status, _ := getJSON(t, tg.adminURL("/admin/status"), nil); status != 200 {
		t.Fatalf("status %d", status)
	}
}
