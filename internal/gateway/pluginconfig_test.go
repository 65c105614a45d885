package gateway

import (
	"net/http"
	"strings"
	"testing"
)

const pluginConfigBase = `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets:
      - address: {{backend}}
`

// TestPluginConfigErrors: a bad plugin setting fails the build with file:line, the path of
// the field, the route (or upstream, or consumer) and the plugin; every problem is listed.
func TestPluginConfigErrors(t *testing.T) {
	cases := []struct {
		name string
		yaml string
		want []string
	}{
		{name: "unknown field", yaml: `
routes:
  - id: api
    upstream: echo
    plugins:
      - name: key-auth
        config:
          hedaer: x-key
`, want: []string{`test.yaml:15: routes[0].plugins[0].config.hedaer: route "api": plugin key-auth: unknown field "hedaer" (did you mean "header"?)`}},
		{name: "wrong type", yaml: `
routes:
  - id: api
    upstream: echo
    plugins:
      - name: cors
        config:
          allow_origins: https://a.example
`, want: []string{`test.yaml:15: routes[0].plugins[0].config.allow_origins: route "api": plugin cors: want a list, got a string`}},
		{name: "unknown plugin", yaml: `
routes:
  - id: api
    upstream: echo
    plugins:
      - name: key-auht
`, want: []string{`test.yaml:13: routes[0].plugins[0].name: route "api": unknown plugin "key-auht"`}},
		{name: "bad CIDR and missing lists, two routes", yaml: `
routes:
  - id: a
    match: {path: /a}
    upstream: echo
    plugins:
      - name: ip-restriction
        config: {allow: [10.0.0.0/33]}
  - id: b
    match: {path: /b}
    upstream: echo
    plugins:
      - name: ip-restriction
`, want: []string{`test.yaml:15: routes[0].plugins[0].config.allow[0]: route "a": plugin ip-restriction: invalid CIDR "10.0.0.0/33"`,
			`test.yaml:20: routes[1].plugins[0].config: route "b": plugin ip-restriction: write allow, deny or both`}},
		{name: "global plugin", yaml: `
plugins:
  - name: cors
    config: {allow_origins: ["*"], allow_credentials: true}
routes:
  - id: api
    upstream: echo
`, want: []string{`test.yaml:11: plugins[0].config.allow_origins[0]: plugin cors: "*" cannot be used with allow_credentials`}},
		{name: "sub-filter rules and types", yaml: `
routes:
  - id: api
    upstream: echo
    plugins:
      - name: sub-filter
        config:
          replace: [{from: "", to: x}]
          types: [html]
`, want: []string{`test.yaml:15: routes[0].plugins[0].config.replace[0].from: route "api": plugin sub-filter: must not be empty`,
			`test.yaml:16: routes[0].plugins[0].config.types[0]: route "api": plugin sub-filter: "html" is not a media type (type/subtype, type/* or *)`}},
		{name: "upstream plugin", yaml: `
routes:
  - id: api
    upstream: echo
`, want: nil},
		{name: "plain password", yaml: `
consumers:
  - name: alice
    credentials:
      basic-auth: {username: alice, password: hunter2}
routes:
  - id: api
    upstream: echo
`, want: []string{`test.yaml:12: consumers[0].credentials.basic-auth.password: consumer "alice": plugin basic-auth: plain passwords are not accepted`}},
		{name: "not a bcrypt hash", yaml: `
consumers:
  - name: alice
    credentials:
      basic-auth: {username: alice, password_hash: "5f4dcc3b5aa765d61d8327deb882cf99"}
routes:
  - id: api
    upstream: echo
`, want: []string{`consumers[0].credentials.basic-auth.password_hash: consumer "alice": plugin basic-auth: not a bcrypt hash`}},
		{name: "credentials for no auth plugin", yaml: `
consumers:
  - name: alice
    credentials:
      cors: {keys: [x]}
routes:
  - id: api
    upstream: echo
`, want: []string{`consumers[0].credentials.cors: consumer "alice": plugin cors: no auth plugin takes credentials by this name`}},
		{name: "short and shared keys", yaml: `
consumers:
  - name: a
    credentials:
      key-auth: {keys: [short]}
routes:
  - id: api
    upstream: echo
`, want: []string{`consumers[0].credentials.key-auth.keys: consumer "a": plugin key-auth: keys[0] is 5 characters`}},
		{name: "a credential of the wrong type is not quoted", yaml: `
consumers:
  - name: a
    credentials:
      key-auth: {keys: secret-key-0123456789}
routes:
  - id: api
    upstream: echo
`, want: []string{`consumers[0].credentials.key-auth.keys: consumer "a": plugin key-auth: want a list, got a string (not shown: credentials)`}},
		{name: "unknown consumer in restriction", yaml: `
routes:
  - id: api
    upstream: echo
    plugins:
      - name: consumer-restriction
        config: {allow_consumers: [ghost]}
`, want: []string{`routes[0].plugins[0].config.allow_consumers: route "api": plugin consumer-restriction: allow_consumers[0]: no consumer named "ghost"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			checkPlugins(t, tc.yaml, tc.want)
		})
	}
}

// checkPlugins runs CheckPlugins on pluginConfigBase followed by yaml: with want nil it must
// accept it, else its error must contain each of want.
func checkPlugins(t *testing.T, yaml string, want []string) {
	t.Helper()
	err := CheckPlugins(mustParse(t, pluginConfigBase+yaml, map[string]string{"backend": "127.0.0.1:1"}))
	if want == nil {
		if err != nil {
			t.Fatalf("CheckPlugins: %v", err)
		}
		return
	}
	if err == nil {
		t.Fatal("CheckPlugins accepted the config")
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error\n%v\nlacks\n%s", err, w)
		}
	}
}

// TestPluginConfigReload: a reload whose plugin config is bad is refused and the running
// config (with its plugins) keeps serving; a good one takes effect.
func TestPluginConfigReload(t *testing.T) {
	be := echoBackend(t, "b")
	vars := map[string]string{"backend": hostport(be)}
	route := func(plugin string) string {
		return pluginConfigBase + `
routes:
  - id: api
    upstream: echo
    plugins:
` + plugin
	}
	tg := startGateway(t, route("      - name: ip-restriction\n        config: {deny: [127.0.0.1]}\n"), vars)
	c := newClient()
	resp, _ := send(t, c, "GET", tg.url("/"))
	wantAnswer(t, resp, 403, "ip_forbidden")

	err := tg.gw.Apply(mustParse(t, route("      - name: ip-restriction\n        config: {deny: [not-an-ip]}\n"), vars))
	if err == nil || !strings.Contains(err.Error(), `plugin ip-restriction: invalid address or CIDR "not-an-ip"`) {
		t.Fatalf("bad reload: %v", err)
	}
	resp, _ = send(t, c, "GET", tg.url("/"))
	wantAnswer(t, resp, 403, "ip_forbidden") // the old chain still serves

	if err := tg.gw.Apply(mustParse(t, route("      - name: ip-restriction\n        config: {allow: [127.0.0.1]}\n"), vars)); err != nil {
		t.Fatal(err)
	}
	resp, _ = send(t, c, "GET", tg.url("/"))
	mustStatus(t, resp, http.StatusOK)
}
