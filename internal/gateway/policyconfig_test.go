package gateway

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicyConfigErrors: the traffic policy plugins' bad settings fail the build with
// file:line, the field's path, the route and the plugin; every problem is listed.
func TestPolicyConfigErrors(t *testing.T) {
	cases := []struct {
		name, yaml string
		want       []string
	}{
		{name: "response-headers", yaml: `
    plugins:
      - name: response-headers
        config:
          set: {Content-Length: "5", X-A: "a\nb", Cache-Control: no-store}
          add: {cache-control: private, "bad name": x}
          remove: [Transfer-Encoding, cache-control]
`, want: []string{
			`test.yaml:14: routes[0].plugins[0].config.set.Content-Length: route "api": plugin response-headers: Content-Length is managed by the gateway`,
			`routes[0].plugins[0].config.set.X-A: route "api": plugin response-headers: invalid header value`,
			`routes[0].plugins[0].config.add.cache-control: route "api": plugin response-headers: "cache-control" is already in set.Cache-Control`,
			`routes[0].plugins[0].config.add.bad name: route "api": plugin response-headers: invalid header name "bad name"`,
			`routes[0].plugins[0].config.remove[0]: route "api": plugin response-headers: Transfer-Encoding is managed by the gateway`,
			`routes[0].plugins[0].config.remove[1]: route "api": plugin response-headers: "cache-control" is already in set.Cache-Control`,
		}},
		{name: "response-headers empty", yaml: `
    plugins:
      - name: response-headers
        config: {}
`, want: []string{`routes[0].plugins[0].config: route "api": plugin response-headers: write at least one of set, add and remove`}},
		{name: "redirect", yaml: `
    plugins:
      - name: redirect
        config: {status: 200, scheme: ftp, host: "a.example:80", port: 70000, path: "no-slash", query: keep-all, append_query: "?x=1"}
`, want: []string{
			`test.yaml:13: routes[0].plugins[0].config.status: route "api": plugin redirect: 200 is not a redirect status`,
			`config.scheme: route "api": plugin redirect: "ftp": want http or https`,
			`config.host: route "api": plugin redirect: "a.example:80" is not a host name or IP`,
			`config.port: route "api": plugin redirect: 70000 is not a port`,
			`config.path: route "api": plugin redirect: "no-slash": want an absolute path`,
			`config.query: route "api": plugin redirect: "keep-all": want keep or drop`,
			`config.append_query: route "api": plugin redirect: "?x=1": want query arguments`,
		}},
		{name: "redirect regex", yaml: `
    plugins:
      - name: redirect
        config: {path_regex: "^/(a"}
      - name: redirect
        config: {status: 308}
`, want: []string{
			`routes[0].plugins[0].config.path_replacement: route "api": plugin redirect: required with path_regex`,
			`routes[0].plugins[1].config: route "api": plugin redirect: nothing to change`,
		}},
		{name: "static-response", yaml: `
    plugins:
      - name: static-response
        config: {status: 99, body: x, body_file: /nonexistent/page.html, headers: {Connection: close}}
      - name: static-response
        config: {body_file: /nonexistent/page.html}
      - name: static-response
        config: {status: 204, body: "no"}
`, want: []string{
			`routes[0].plugins[0].config.status: route "api": plugin static-response: 99: want 200 to 599`,
			`routes[0].plugins[0].config.body_file: route "api": plugin static-response: not with body`,
			`routes[0].plugins[0].config.headers.Connection: route "api": plugin static-response: Connection is managed by the gateway`,
			`routes[0].plugins[1].config.body_file: route "api": plugin static-response: stat /nonexistent/page.html: no such file or directory`,
			`routes[0].plugins[2].config.body: route "api": plugin static-response: a 204 answer has no body`,
		}},
		{name: "fault-injection", yaml: `
    plugins:
      - name: fault-injection
        config: {delay: {duration: 0s, percentage: 101}, abort: {status: 700, percentage: -1}}
      - name: fault-injection
        config: {seed: 1}
      - name: fault-injection
        config: {abort: {status: 503, percent: 5}}
`, want: []string{
			`routes[0].plugins[0].config.delay.duration: route "api": plugin fault-injection: 0s: want more than 0, at most 1h0m0s`,
			`routes[0].plugins[0].config.delay.percentage: route "api": plugin fault-injection: 101: want 0 to 100`,
			`routes[0].plugins[0].config.abort.status: route "api": plugin fault-injection: 700: want 200 to 599`,
			`routes[0].plugins[0].config.abort.percentage: route "api": plugin fault-injection: -1: want 0 to 100`,
			`routes[0].plugins[1].config: route "api": plugin fault-injection: write a delay, an abort or both`,
			`routes[0].plugins[2].config.abort.percent: route "api": plugin fault-injection: unknown field "percent"`,
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkPlugins(t, "routes:\n  - id: api\n    upstream: echo"+tc.yaml, tc.want)
		})
	}
}

// TestStaticResponseReload: body_file is read at each load: a reload serves the file's new
// content, and a reload whose file is gone is refused while the old page keeps serving.
func TestStaticResponseReload(t *testing.T) {
	dir := t.TempDir()
	page := filepath.Join(dir, "page.html")
	os.WriteFile(page, []byte("v1"), 0o644)
	vars := map[string]string{"backend": "127.0.0.1:1", "page": page}
	yaml := func() string {
		return pluginConfigBase + `
routes:
  - id: maint
    upstream: echo
    plugins:
      - name: static-response
        config: {status: 503, body_file: {{page}}}
`
	}
	tg := startGateway(t, yaml(), vars)
	c := newClient()
	if resp, body := send(t, c, "GET", tg.url("/")); resp.StatusCode != 503 || body != "v1" {
		t.Fatalf("first load: %d %q", resp.StatusCode, body)
	}
	os.WriteFile(page, []byte("v2"), 0o644)
	if err := tg.gw.Apply(mustParse(t, yaml(), vars)); err != nil {
		t.Fatal(err)
	}
	if _, body := send(t, c, "GET", tg.url("/")); body != "v2" {
		t.Errorf("after reload: %q, want v2", body)
	}
	vars["page"] = filepath.Join(dir, "gone.html")
	if err := tg.gw.Apply(mustParse(t, yaml(), vars)); err == nil || !strings.Contains(err.Error(), "gone.html") {
		t.Fatalf("reload with a missing file: %v", err)
	}
	if resp, body := send(t, c, "GET", tg.url("/")); resp.StatusCode != http.StatusServiceUnavailable || body != "v2" {
		t.Errorf("after a refused reload: %d %q, want the old 503 v2", resp.StatusCode, body)
	}
}
