package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestPolicyPluginsAgainstBinary runs the traffic policy plugins in the sluice binary:
// response-headers edits an upstream's response, redirect and static-response (its page
// read from a file beside the config) answer without the upstream, fault-injection aborts
// with its reason code; the access log and /metrics say so, as docs/errors.md and
// docs/metrics.md describe, and `sluice validate` names a bad field by file and line.
func TestPolicyPluginsAgainstBinary(t *testing.T) {
	var hits atomic.Int64
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Header().Set("Server", "backend/1.0")
		w.Header().Set("Cache-Control", "public")
		w.Write([]byte("ok\n"))
	}))
	t.Cleanup(be.Close)
	listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfg := configFile(t, fmt.Sprintf(`listeners:
  - {address: "%[1]s"}
upstreams:
  - {id: be, targets: [{address: "%[2]s"}]}
routes:
  - id: app
    match: {path_prefix: /app}
    upstream: be
    plugins:
      - name: response-headers
        config: {set: {Cache-Control: no-store}, remove: [Server]}
  - id: old
    match: {path_prefix: /old/}
    upstream: be
    plugins:
      - name: redirect
        config: {path_regex: "^/old/(.*)$", path_replacement: /app/$1, status: 308}
  - id: maint
    match: {path_prefix: /shop}
    upstream: be
    plugins:
      - name: static-response
        config: {status: 503, body_file: maintenance.html, headers: {Content-Type: text/html}}
  - id: chaos
    match: {path_prefix: /chaos}
    upstream: be
    plugins:
      - name: fault-injection
        config: {abort: {status: 503}}
admin: {address: "%[3]s"}
`, listen, strings.TrimPrefix(be.URL, "http://"), admin))
	if err := os.WriteFile(filepath.Join(filepath.Dir(cfg), "maintenance.html"), []byte("<p>back soon</p>"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "run", cfg)
	p.waitLog(t, `"sluice started"`, 0)
	gw := "http://" + listen
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 5 * time.Second}

	get := func(path string) (*http.Response, string) {
		t.Helper()
		resp, err := c.Get(gw + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("/app/x")
	if resp.StatusCode != 200 || body != "ok\n" || resp.Header.Get("Server") != "" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("response-headers: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	resp, _ = get("/old/a?b=1")
	if resp.StatusCode != 308 || resp.Header.Get("Location") != gw+"/app/a?b=1" {
		t.Errorf("redirect: %d %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	resp, body = get("/shop/cart")
	if resp.StatusCode != 503 || body != "<p>back soon</p>" || resp.Header.Get("X-Sluice-Error") != "" {
		t.Errorf("static-response: %d %v %q", resp.StatusCode, resp.Header, body)
	}
	resp, _ = get("/chaos")
	if resp.StatusCode != 503 || resp.Header.Get("X-Sluice-Error") != "fault_injected_abort" {
		t.Errorf("fault-injection: %d %q", resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the backend saw %d requests, want 1 (only /app)", n)
	}

	deadline := time.Now().Add(5 * time.Second)
	for _, want := range []string{`"plugin":"redirect","reason":"redirect"`, `"plugin":"static-response","reason":"static_response"`,
		`"plugin":"fault-injection","reason":"fault_injected_abort"`} {
		for !strings.Contains(p.access(), want) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(p.access(), want) {
			t.Errorf("no access log line with %s:\n%s", want, p.access())
		}
	}
	m := do(t, "GET", "http://"+admin+"/metrics", nil, "").body
	for _, want := range []string{
		`sluice_fault_injections_total{kind="abort",place="chaos",plugin="fault-injection"} 1`,
		`sluice_plugin_answers_total{plugin="redirect",reason="redirect",route="old"} 1`,
		`sluice_plugin_answers_total{plugin="static-response",reason="static_response",route="maint"} 1`,
	} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(m, `sluice_gateway_errors_total{reason="fault_injected_abort"}`) {
		t.Error("an injected abort is counted as a gateway error")
	}

	bad := configFile(t, `listeners: [{address: "127.0.0.1:0"}]
upstreams: [{id: be, targets: [{address: "127.0.0.1:1"}]}]
routes:
  - id: old
    upstream: be
    plugins:
      - name: redirect
        config: {status: 200, scheme: https}
`)
	code, out := sluiceCmd(t, "validate", bad)
	if code == 0 || !strings.Contains(out, `sluice.yaml:8: routes[0].plugins[0].config.status: route "old": plugin redirect: 200 is not a redirect status`) {
		t.Errorf("validate: exit %d\n%s", code, out)
	}
}
