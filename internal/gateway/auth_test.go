package gateway

import (
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

const authConfig = `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets:
      - address: {{backend}}
consumers:
  - name: alice
    groups: [staff]
    credentials:
      key-auth: {keys: ["alice-key-0123456789"]}
      basic-auth: {username: alice, password_hash: "{{alicehash}}"}
  - name: bob
    groups: [partners]
    credentials:
      key-auth: {keys: ["bob-key-0123456789ab"]}
routes:
  - id: basic
    match: {path_prefix: /basic}
    upstream: echo
    plugins:
      - name: basic-auth
        config: {realm: staff area}
  - id: either
    match: {path_prefix: /either}
    upstream: echo
    plugins:
      - name: key-auth
      - name: basic-auth
  - id: staff
    match: {path_prefix: /staff}
    upstream: echo
    plugins:
      - name: consumer-restriction
        config: {allow_groups: [staff]}
      - name: key-auth
`

func basicHeader(user, pass string) string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":"+pass))
}

// TestAuthPlugins: basic-auth against a bcrypt hash (right, wrong, unknown user, missing,
// malformed), two auth plugins on one route (either identifies the consumer; none: one 401
// with both challenges), and consumer-restriction by group, which runs after auth whatever
// the config order. Credentials reach neither the upstream nor any log.
func TestAuthPlugins(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("s3cret-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	be := echoBackend(t, "b")
	tg, logs := startGatewayLogged(t, authConfig, map[string]string{"backend": hostport(be), "alicehash": string(hash)})
	c := newClient()
	cases := []struct {
		name       string
		path       string
		header     []string
		status     int
		reason     string
		consumer   string
		challenges int
	}{
		{name: "basic right", path: "/basic", header: []string{"Authorization", basicHeader("alice", "s3cret-pass")}, status: 200, consumer: "alice"},
		{name: "basic right again (cached)", path: "/basic", header: []string{"Authorization", basicHeader("alice", "s3cret-pass")}, status: 200, consumer: "alice"},
		{name: "basic wrong password", path: "/basic", header: []string{"Authorization", basicHeader("alice", "wrong-pass")}, status: 401, reason: "auth_credentials_invalid", challenges: 1},
		{name: "basic unknown user", path: "/basic", header: []string{"Authorization", basicHeader("mallory", "s3cret-pass")}, status: 401, reason: "auth_credentials_invalid", challenges: 1},
		{name: "basic malformed", path: "/basic", header: []string{"Authorization", "Basic !!!notbase64"}, status: 401, reason: "auth_credentials_invalid", challenges: 1},
		{name: "basic missing", path: "/basic", status: 401, reason: "auth_credentials_missing", challenges: 1},
		{name: "bearer is not basic", path: "/basic", header: []string{"Authorization", "Bearer xyz"}, status: 401, reason: "auth_credentials_missing", challenges: 1},
		{name: "either: key", path: "/either", header: []string{"apikey", "bob-key-0123456789ab"}, status: 200, consumer: "bob"},
		{name: "either: basic", path: "/either", header: []string{"Authorization", basicHeader("alice", "s3cret-pass")}, status: 200, consumer: "alice"},
		{name: "either: none", path: "/either", status: 401, reason: "auth_credentials_missing", challenges: 2},
		{name: "either: bad key", path: "/either", header: []string{"apikey", "bad-key-bad-key-bad"}, status: 401, reason: "auth_credentials_invalid", challenges: 1},
		{name: "staff: alice", path: "/staff", header: []string{"apikey", "alice-key-0123456789"}, status: 200, consumer: "alice"},
		{name: "staff: bob", path: "/staff", header: []string{"apikey", "bob-key-0123456789ab"}, status: 403, reason: "consumer_not_allowed"},
		{name: "staff: nobody", path: "/staff", status: 401, reason: "auth_credentials_missing", challenges: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := send(t, c, "GET", tg.url(tc.path), tc.header...)
			wantAnswer(t, resp, tc.status, tc.reason)
			if n := len(resp.Header.Values("WWW-Authenticate")); n != tc.challenges {
				t.Errorf("%d WWW-Authenticate fields (%q), want %d", n, resp.Header.Values("WWW-Authenticate"), tc.challenges)
			}
			if tc.status != 200 {
				if !strings.Contains(body, `"error":"`+tc.reason+`"`) {
					t.Errorf("error body %q lacks the reason", body)
				}
				return
			}
			var info echoInfo
			json.Unmarshal([]byte(body), &info)
			if _, ok := info.Header["Authorization"]; ok {
				t.Errorf("Authorization forwarded upstream")
			}
			if got := strings.Join(info.Header["X-Consumer-Name"], ","); got != tc.consumer {
				t.Errorf("X-Consumer-Name = %q, want %q", got, tc.consumer)
			}
		})
	}
	lines := tg.accessLines(len(cases))
	if lines[0]["consumer"] != "alice" || lines[12]["reason"] != "consumer_not_allowed" || lines[12]["consumer"] != "bob" {
		t.Errorf("access log: %v / %v", lines[0], lines[12])
	}
	if got := pluginAnswers(t, tg, "basic", "basic-auth", "auth_credentials_invalid"); got != 3 {
		t.Errorf("sluice_plugin_answers_total{basic, basic-auth, invalid} = %v, want 3", got)
	}
	// No credential, in any form, in either log (the gateway's own log is captured: it has
	// the config's application in it).
	if !strings.Contains(logs.String(), `msg="config applied"`) {
		t.Errorf("the gateway's log was not captured: %q", logs.String())
	}
	secrets := []string{"s3cret-pass", "wrong-pass", "alice-key-0123456789", "bob-key-0123456789ab", "bad-key-bad-key-bad",
		base64.StdEncoding.EncodeToString([]byte("alice:s3cret-pass")), string(hash)}
	for _, s := range secrets {
		if strings.Contains(tg.access.String(), s) || strings.Contains(logs.String(), s) {
			t.Errorf("credential %q appears in a log", s)
		}
	}
}
