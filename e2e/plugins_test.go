package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestPluginsBinary runs the binary with key-auth and cors on a route: a preflight is
// answered without a key, a request without a key is refused 401 with a challenge, one with
// the key reaches the backend without it and as its consumer; the key is in neither the
// access log nor the process log (debug level). A config with a bad plugin setting does
// not start, naming file:line, route, plugin and field.
func TestPluginsBinary(t *testing.T) {
	const key = "e2e-key-5f1c9a7d3b2e8f4a"
	var seen struct{ key, consumer string }
	seenCh := make(chan struct{}, 10)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.key, seen.consumer = r.Header.Get("apikey"), r.Header.Get("X-Consumer-Name")
		seenCh <- struct{}{}
		w.Write([]byte("ok"))
	}))
	defer be.Close()
	backend := strings.TrimPrefix(be.URL, "http://")
	listen := testutil.FreeAddr(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "sluice.yaml")
	os.WriteFile(path, []byte(fmt.Sprintf(`
listeners: [{address: %q}]
upstreams: [{id: app, targets: [{address: %q}]}]
admin: {enabled: false}
log: {level: debug, access_query: true}
consumers:
  - name: web
    credentials: {key-auth: {keys: [%q]}}
routes:
  - id: api
    upstream: app
    plugins:
      - name: key-auth
        config: {query: key}
      - name: cors
        config: {allow_origins: ["https://app.example.com"], allow_headers: [apikey]}
`, listen, backend, key)), 0o644)
	p := start(t, "run", "-c", path)
	url := "http://" + listen + "/v1"
	testutil.WaitFor(t, 5*time.Second, "listening", func() bool { _, _, _, err := get(url); return err == nil })

	c := &http.Client{Timeout: 5 * time.Second}
	do := func(method, u string, h ...string) *http.Response {
		req, _ := http.NewRequest(method, u, nil)
		for i := 0; i+1 < len(h); i += 2 {
			req.Header.Set(h[i], h[i+1])
		}
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	resp := do("OPTIONS", url, "Origin", "https://app.example.com", "Access-Control-Request-Method", "GET", "Access-Control-Request-Headers", "apikey")
	if resp.StatusCode != 204 || resp.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp = do("GET", url)
	if resp.StatusCode != 401 || resp.Header.Get("WWW-Authenticate") == "" || resp.Header.Get("X-Sluice-Error") != "auth_credentials_missing" {
		t.Errorf("no key: %d %v", resp.StatusCode, resp.Header)
	}
	for _, r := range []*http.Response{do("GET", url, "apikey", key), do("GET", url+"?key="+key)} {
		<-seenCh
		if r.StatusCode != 200 || seen.key != "" || seen.consumer != "web" {
			t.Errorf("with key: %d, backend saw apikey %q consumer %q", r.StatusCode, seen.key, seen.consumer)
		}
	}
	testutil.WaitFor(t, 5*time.Second, "4 access lines", func() bool { return strings.Count(p.access(), "\n") >= 4 })
	if strings.Contains(p.access(), key) || strings.Contains(p.logs(), key) {
		t.Errorf("the key is in a log:\n%s\n%s", p.access(), p.logs())
	}
	if !strings.Contains(p.access(), `"consumer":"web"`) {
		t.Errorf("access log lacks the consumer:\n%s", p.access())
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(fmt.Sprintf(`listeners: [{address: %q}]
upstreams: [{id: app, targets: [{address: %q}]}]
routes:
  - id: api
    upstream: app
    plugins:
      - name: cors
        config: {allow_origin: ["*"]}
`, testutil.FreeAddr(t), backend)), 0o644)
	out, err := exec.Command(binary, "run", "-c", bad).CombinedOutput()
	if err == nil || !strings.Contains(string(out), `bad.yaml:8: routes[0].plugins[0].config.allow_origin: route \"api\": plugin cors: unknown field \"allow_origin\" (did you mean \"allow_origins\"?)`) {
		t.Errorf("bad plugin config: %v\n%s", err, out)
	}
}
