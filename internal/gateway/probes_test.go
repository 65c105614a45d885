package gateway

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// adminDo sends method path to the admin listener and returns the status, the Allow header
// and the body.
func adminDo(t *testing.T, tg *testGateway, method, path string, header map[string]string) (int, string, string) {
	t.Helper()
	req, _ := http.NewRequest(method, tg.adminURL(path), nil)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Allow"), string(body)
}

// TestAdminProbesAndMethods: /admin/healthz and /admin/readyz answer without the API key
// (load balancers and Kubernetes probes), everything else still wants it; a method other
// than GET/HEAD on an endpoint is 405 with Allow (docs/admin-api.md), on an unknown path 404.
func TestAdminProbesAndMethods(t *testing.T) {
	const key = "probe-key-0123456789abcdef"
	be := echoBackend(t, "a")
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml+"admin: {address: \"127.0.0.1:0\", api_key: "+key+"}\n", vars)
	withKey := map[string]string{"X-API-Key": key}
	tests := []struct {
		name, method, path string
		header             map[string]string
		status             int
		allow, body        string
	}{
		{name: "healthz without key", method: "GET", path: "/admin/healthz", status: 200, body: `"status": "live"`},
		{name: "readyz without key", method: "GET", path: "/admin/readyz", status: 200, body: `"status": "ready"`},
		{name: "healthz HEAD", method: "HEAD", path: "/admin/healthz", status: 200},
		{name: "status still wants the key", method: "GET", path: "/admin/status", status: 401},
		{name: "POST status", method: "POST", path: "/admin/status", header: withKey, status: 405, allow: "GET, HEAD", body: `"method_not_allowed"`},
		{name: "DELETE pool", method: "DELETE", path: "/admin/upstreams/echo/pool", header: withKey, status: 405, allow: "GET, HEAD"},
		{name: "PUT metrics", method: "PUT", path: "/metrics", header: withKey, status: 405, allow: "GET, HEAD"},
		{name: "POST healthz", method: "POST", path: "/admin/healthz", status: 405, allow: "GET, HEAD"},
		{name: "POST unknown", method: "POST", path: "/admin/nothing", header: withKey, status: 404, body: `"not_found"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, allow, body := adminDo(t, tg, tc.method, tc.path, tc.header)
			if status != tc.status || allow != tc.allow || !strings.Contains(body, tc.body) {
				t.Errorf("%s %s: %d Allow=%q %s; want %d Allow=%q with %s", tc.method, tc.path, status, allow, body, tc.status, tc.allow, tc.body)
			}
		})
	}
}

// TestReadyzDuringShutdown: while a shutdown drains a request, /admin/readyz says 503 with
// the reason (a load balancer stops sending) and /admin/healthz still says live.
func TestReadyzDuringShutdown(t *testing.T) {
	slow := testutil.NewBackend(t, testutil.BackendOptions{Delay: 2 * time.Second})
	yaml, vars := basicConfig(slow.Addr())
	tg := startGateway(t, yaml+"admin: {address: \"127.0.0.1:0\"}\n", vars)
	if status, _, body := adminDo(t, tg, "GET", "/admin/readyz", nil); status != 200 {
		t.Fatalf("readyz before shutdown: %d %s", status, body)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		resp, err := newClient().Get(tg.url("/slow"))
		if err == nil {
			resp.Body.Close()
		}
	}()
	testutil.WaitFor(t, 3*time.Second, "the request to reach the backend", func() bool { return slow.Requests() == 1 })
	admin := tg.adminURL("/admin/readyz")
	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		shut <- tg.gw.Shutdown(ctx)
	}()
	var body string
	testutil.WaitFor(t, 3*time.Second, "readyz to say 503", func() bool {
		resp, err := http.Get(admin)
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return resp.StatusCode == 503
	})
	if !strings.Contains(body, "shutting down") || !strings.Contains(body, `"not_ready"`) {
		t.Errorf("readyz body %s: want not_ready with the shutdown reason", body)
	}
	if resp, err := http.Get(strings.Replace(admin, "readyz", "healthz", 1)); err != nil || resp.StatusCode != 200 {
		t.Errorf("healthz while draining: %v %v, want 200", resp, err)
	} else {
		resp.Body.Close()
	}
	<-done
	if err := <-shut; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
}
