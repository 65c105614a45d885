package gateway

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"sluice/internal/config"
	"sluice/internal/testutil"
	"sluice/internal/testutil/jwttest"
)

const jwtAuthConfig = `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets:
      - address: {{backend}}
consumers:
  - name: alice
    credentials:
      jwt-auth: {claim_value: alice}
routes:
  - id: static
    match: {path_prefix: /static}
    upstream: echo
    plugins:
      - name: jwt-auth
        config:
          algorithms: [HS256, RS256, ES256, EdDSA]
          keys:
            - secret: "{{secret}}"
            - public_key_file: {{rs}}
            - public_key_file: {{es}}
            - public_key_file: {{ed}}
          issuer: https://issuer.test
          audiences: [api]
          clock_skew: 30s
          forward_claims:
            - {claim: sub, header: X-User}
            - {claim: roles, header: X-Roles}
  - id: remote
    match: {path_prefix: /remote}
    upstream: echo
    plugins:
      - name: jwt-auth
        config:
          jwks: {url: "{{jwks}}", min_refresh: 100ms, timeout: 2s}
          require_consumer: true
          remove_token: true
  - id: cookie
    match: {path_prefix: /cookie}
    upstream: echo
    plugins:
      - name: jwt-auth
        config:
          keys: [{secret: "{{secret}}"}]
          token: {cookie: session}
          remove_token: true
  - id: query
    match: {path_prefix: /query}
    upstream: echo
    plugins:
      - name: jwt-auth
        config:
          keys: [{secret: "{{secret}}"}]
          token: {query: access_token}
          remove_token: true
  - id: header
    match: {path_prefix: /header}
    upstream: echo
    plugins:
      - name: jwt-auth
        config:
          keys: [{secret: "{{secret}}"}]
          token: {header: X-Api-Token}
`

// jwtGateway starts a gateway with jwtAuthConfig: static keys of the four headline
// algorithms, a JWKS route serving the EdDSA key as "d1", and a cookie route. Its logger
// writes everything (debug included) to the returned buffer.
func jwtGateway(t *testing.T) (*testGateway, map[string]jwttest.Signer, *jwttest.JWKSServer, *syncBuffer) {
	t.Helper()
	sig := jwttest.Signers()
	js := jwttest.NewJWKSServer(t, sig["EdDSA"].JWK("d1"))
	js.Update(func(s *jwttest.State) { s.CacheControl = "max-age=3600" })
	be := echoBackend(t, "b")
	logs := &syncBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	tg := startGatewayLog(t, jwtAuthConfig, map[string]string{"backend": hostport(be),
		"secret": string(sig["HS256"].HMAC), "rs": sig["RS256"].PEMFile(t), "es": sig["ES256"].PEMFile(t),
		"ed": sig["EdDSA"].PEMFile(t), "jwks": js.URL}, log)
	return tg, sig, js, logs
}

// TestJWTAuth: through the gateway, valid tokens of each algorithm reach the upstream with
// the consumer and the forwarded claims (the client's forged copies dropped); every bad
// token is a 401 with its reason and an RFC 6750 challenge; none is a 5xx; and no token
// appears in the access log or the gateway's debug log.
func TestJWTAuth(t *testing.T) {
	tg, sig, _, logs := jwtGateway(t)
	c := newClient()
	with := func(f func(jwt.MapClaims)) jwt.MapClaims { cl := jwttest.Claims("alice"); f(cl); return cl }
	now := time.Now()
	var sent []string
	cases := []struct {
		name   string
		path   string
		token  string
		auth   string // the whole Authorization value, when not "Bearer <token>"
		cookie string
		xtoken string // X-Api-Token
		status int
		reason string
		desc   string // in the challenge's error_description
	}{
		{name: "HS256", path: "/static", token: sig["HS256"].Sign(t, "", jwttest.Claims("alice")), status: 200},
		{name: "RS256", path: "/static", token: sig["RS256"].Sign(t, "", jwttest.Claims("alice")), status: 200},
		{name: "ES256", path: "/static", token: sig["ES256"].Sign(t, "", jwttest.Claims("alice")), status: 200},
		{name: "EdDSA", path: "/static", token: sig["EdDSA"].Sign(t, "", jwttest.Claims("alice")), status: 200},
		{name: "expired", path: "/static", token: sig["RS256"].Sign(t, "", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })),
			status: 401, reason: "jwt_expired", desc: "the token has expired"},
		{name: "expired within the clock skew", path: "/static", token: sig["RS256"].Sign(t, "", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-10 * time.Second).Unix() })), status: 200},
		{name: "not yet valid", path: "/static", token: sig["ES256"].Sign(t, "", with(func(c jwt.MapClaims) { c["nbf"] = now.Add(5 * time.Minute).Unix() })),
			status: 401, reason: "jwt_not_yet_valid", desc: "not valid yet"},
		{name: "wrong issuer", path: "/static", token: sig["EdDSA"].Sign(t, "", with(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })),
			status: 401, reason: "jwt_wrong_issuer", desc: "issuer"},
		{name: "wrong audience", path: "/static", token: sig["HS256"].Sign(t, "", with(func(c jwt.MapClaims) { c["aud"] = "billing" })),
			status: 401, reason: "jwt_wrong_audience", desc: "audience"},
		{name: "wrongly signed", path: "/static", token: jwttest.Signer{Alg: "RS256", Priv: jwttest.RSA(1)}.Sign(t, "", jwttest.Claims("alice")),
			status: 401, reason: "jwt_bad_signature", desc: "signature"},
		{name: "alg none", path: "/static", token: noneToken(jwttest.Claims("alice")), status: 401, reason: "jwt_algorithm_not_allowed", desc: "algorithm"},
		{name: "RSA public key as HMAC secret", path: "/static", token: jwttest.Signer{Alg: "HS256", HMAC: sig["RS256"].PEM(t)}.Sign(t, "", jwttest.Claims("alice")),
			status: 401, reason: "jwt_bad_signature", desc: "signature"},
		{name: "garbage", path: "/static", token: "not.a.garbage-signature-part", status: 401, reason: "jwt_malformed", desc: "malformed"},
		{name: "no token", path: "/static", status: 401, reason: "jwt_missing"},
		{name: "another scheme", path: "/static", auth: "Basic YWxpY2U6cGFzcw==", status: 401, reason: "jwt_missing"},
		{name: "JWKS key", path: "/remote", token: sig["EdDSA"].Sign(t, "d1", jwttest.Claims("alice")), status: 200},
		{name: "JWKS, unknown consumer", path: "/remote", token: sig["EdDSA"].Sign(t, "d1", jwttest.Claims("mallory")),
			status: 403, reason: "jwt_unknown_consumer", desc: "consumer"},
		{name: "cookie", path: "/cookie", cookie: "a=1; session=" + sig["HS256"].Sign(t, "", jwttest.Claims("alice")) + "; b=2", status: 200},
		{name: "query", path: "/query?a=1&access_token=" + sig["HS256"].Sign(t, "", jwttest.Claims("alice")) + "&b=2", status: 200},
		{name: "query, none", path: "/query?a=1", status: 401, reason: "jwt_missing"},
		{name: "own header, bare token", path: "/header", xtoken: sig["HS256"].Sign(t, "", jwttest.Claims("alice")), status: 200},
		{name: "own header, Authorization ignored", path: "/header", token: sig["HS256"].Sign(t, "", jwttest.Claims("alice")), status: 401, reason: "jwt_missing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", tg.url(tc.path), nil)
			switch {
			case tc.auth != "":
				req.Header.Set("Authorization", tc.auth)
			case tc.token != "":
				req.Header.Set("Authorization", "Bearer "+tc.token)
				sent = append(sent, tc.token)
			}
			if tc.xtoken != "" {
				req.Header.Set("X-Api-Token", tc.xtoken)
				sent = append(sent, tc.xtoken)
			}
			if strings.Contains(tc.path, "access_token=") {
				sent = append(sent, strings.Split(strings.Split(tc.path, "access_token=")[1], "&")[0])
			}
			if tc.cookie != "" {
				req.Header.Set("Cookie", tc.cookie)
				sent = append(sent, strings.Split(strings.Split(tc.cookie, "session=")[1], ";")[0])
			}
			req.Header.Set("X-User", "forged")
			req.Header.Set("X-Consumer-Name", "forged")
			resp, info := getEcho(t, c, req)
			wantAnswer(t, resp, tc.status, tc.reason)
			ch := resp.Header.Get("WWW-Authenticate")
			switch {
			case tc.status == 200:
				checkForwarded(t, tc.path, info, tc.token)
			case tc.desc == "":
				if ch != `Bearer realm="sluice"` {
					t.Errorf("challenge %q, want the bare realm", ch)
				}
			default:
				code := "invalid_token"
				if tc.status == 403 {
					code = "insufficient_scope"
				}
				if !strings.HasPrefix(ch, `Bearer realm="sluice", error="`+code+`", error_description="`) || !strings.Contains(ch, tc.desc) {
					t.Errorf("challenge %q, want error %s and a description with %q", ch, code, tc.desc)
				}
			}
		})
	}
	tg.accessLines(len(cases))
	for _, tok := range sent {
		sigPart := tok[strings.LastIndexByte(tok, '.')+1:]
		if len(sigPart) < 16 { // alg none: no signature; look for the whole token
			sigPart = tok
		}
		if strings.Contains(tg.access.String(), sigPart) || strings.Contains(logs.String(), sigPart) {
			t.Fatalf("a token is in the logs:\naccess:\n%s\ngateway:\n%s", tg.access, logs)
		}
	}
	if !strings.Contains(logs.String(), "token refused") {
		t.Fatalf("the debug log has no refusal (the no-token check would prove nothing):\n%s", logs)
	}
}

// checkForwarded checks what the upstream got for an accepted token on path.
func checkForwarded(t *testing.T, path string, info echoInfo, token string) {
	t.Helper()
	hdr := func(k string) string { return strings.Join(info.Header[k], ",") }
	if strings.HasPrefix(path, "/query") {
		if info.URI != "/query?a=1&b=2" || hdr("X-Consumer-Name") != "alice" {
			t.Errorf("upstream got URI %q (the token removed), X-Consumer-Name %q", info.URI, hdr("X-Consumer-Name"))
		}
		return
	}
	switch path {
	case "/static":
		if hdr("X-User") != "alice" || hdr("X-Consumer-Name") != "alice" || hdr("Authorization") != "Bearer "+token {
			t.Errorf("upstream got X-User %q, X-Consumer-Name %q, Authorization kept %v", hdr("X-User"), hdr("X-Consumer-Name"), hdr("Authorization") != "")
		}
	case "/remote":
		if hdr("Authorization") != "" || hdr("X-Consumer-Name") != "alice" || hdr("X-User") != "forged" {
			t.Errorf("upstream got Authorization %q (remove_token), X-Consumer-Name %q, X-User %q", hdr("Authorization"), hdr("X-Consumer-Name"), hdr("X-User"))
		}
	case "/header":
		if hdr("X-Api-Token") == "" || hdr("X-Consumer-Name") != "alice" {
			t.Errorf("upstream got X-Api-Token %v (kept), X-Consumer-Name %q", hdr("X-Api-Token") != "", hdr("X-Consumer-Name"))
		}
	case "/cookie":
		if hdr("Cookie") != "a=1; b=2" || hdr("X-Consumer-Name") != "alice" {
			t.Errorf("upstream got Cookie %q (the session cookie removed), X-Consumer-Name %q", hdr("Cookie"), hdr("X-Consumer-Name"))
		}
	}
}

func noneToken(c jwt.MapClaims) string {
	s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	return s
}

// TestJWTAuthJWKSRotation: the issuer's JWKS server rotates keys. A token of a new kid is
// accepted after the refresh its unknown kid asks for; tokens of the removed key are refused
// once the set is refreshed; unknown kids do not hammer the JWKS server.
func TestJWTAuthJWKSRotation(t *testing.T) {
	tg, sig, js, _ := jwtGateway(t)
	c := newClient()
	get := func(tok string) *http.Response {
		req, _ := http.NewRequest("GET", tg.url("/remote"), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return sendReq(t, c, req)
	}
	old := sig["EdDSA"].Sign(t, "d1", jwttest.Claims("alice"))
	wantAnswer(t, get(old), 200, "")
	// Rotation: the issuer publishes e2 (ES256) next to d1 and signs with it.
	js.Update(func(s *jwttest.State) { s.Keys = append(s.Keys, sig["ES256"].JWK("e2")) })
	time.Sleep(150 * time.Millisecond) // past min_refresh since the start's fetch
	fresh := sig["ES256"].Sign(t, "e2", jwttest.Claims("alice"))
	wantAnswer(t, get(fresh), 200, "")
	// Then it drops d1, and its next answer says to refresh every min_refresh. The gateway
	// learns that at its next fetch: the one a token of another new kid (e3) asks for.
	js.Update(func(s *jwttest.State) { s.Keys = s.Keys[1:]; s.CacheControl = "max-age=0" })
	time.Sleep(150 * time.Millisecond)
	wantAnswer(t, get(sig["ES256"].Sign(t, "e3", jwttest.Claims("alice"))), 401, "jwt_unknown_key")
	testutil.WaitFor(t, 3*time.Second, "tokens of the removed key to be refused", func() bool {
		return get(old).Header.Get("X-Sluice-Error") == "jwt_unknown_key"
	})
	wantAnswer(t, get(fresh), 200, "")
	// A flood of made-up kids costs the JWKS server at most one fetch per min_refresh.
	js.Update(func(s *jwttest.State) { s.CacheControl = "max-age=3600" })
	time.Sleep(150 * time.Millisecond)
	before := js.Hits.Load()
	start := time.Now()
	for i := range 100 {
		wantAnswer(t, get(sig["ES256"].Sign(t, "bogus-"+string(rune('a'+i%26)), jwttest.Claims("alice"))), 401, "jwt_unknown_key")
	}
	if n, max := js.Hits.Load()-before, int64(time.Since(start)/(100*time.Millisecond))+2; n > max {
		t.Fatalf("100 unknown kids in %v made %d JWKS fetches, want at most %d", time.Since(start), n, max)
	}
	m := gathered(t, tg)
	labels := map[string]string{"plugin": "jwt-auth", "place": "remote", "result": "rate_limited"}
	if v, _ := m.value("sluice_jwks_unknown_kid_refreshes_total", labels); v < 50 {
		t.Errorf("rate-limited unknown-kid refreshes counted %v, want >= 50", v)
	}
	labels["result"] = "fetched"
	if v, _ := m.value("sluice_jwks_unknown_kid_refreshes_total", labels); v < 2 {
		t.Errorf("unknown-kid refreshes counted %v, want >= 2", v)
	}
}

// TestJWTAuthJWKSDown: a JWKS server down when the gateway starts gives 503
// jwt_keys_unavailable (not a 401: the token may be fine), and tokens verify once it is up;
// when it goes down later, the last good key set keeps serving.
func TestJWTAuthJWKSDown(t *testing.T) {
	sig := jwttest.Signers()
	addr := testutil.FreeAddr(t)
	be := echoBackend(t, "b")
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets: [{address: {{backend}}}]
routes:
  - id: remote
    upstream: echo
    plugins:
      - name: jwt-auth
        config:
          jwks: {url: "http://{{addr}}/jwks", min_refresh: 100ms, timeout: 1s}
`, map[string]string{"backend": hostport(be), "addr": addr})
	c := newClient()
	tok := sig["ES256"].Sign(t, "e1", jwttest.Claims("alice"))
	get := func() *http.Response {
		req, _ := http.NewRequest("GET", tg.url("/x"), nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		return sendReq(t, c, req)
	}
	resp := get()
	wantAnswer(t, resp, 503, "jwt_keys_unavailable")
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	// The JWKS server comes up on that address.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("dead port taken meanwhile: %v", err)
	}
	js := &jwttest.JWKSServer{}
	js.Update(func(s *jwttest.State) {
		s.Keys = []map[string]any{sig["ES256"].JWK("e1")}
		s.CacheControl = "max-age=0"
	})
	srv := httptest.NewUnstartedServer(js)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	testutil.WaitFor(t, 5*time.Second, "the token to verify once the JWKS server is up", func() bool {
		return get().StatusCode == 200
	})
	m := gathered(t, tg)
	if v, _ := m.value("sluice_jwks_fetches_total", map[string]string{"place": "remote", "result": "failure"}); v < 1 {
		t.Errorf("failed JWKS fetches counted %v, want >= 1", v)
	}
	if v, _ := m.value("sluice_jwks_keys", map[string]string{"place": "remote"}); v != 1 {
		t.Errorf("sluice_jwks_keys = %v, want 1", v)
	}
	// It goes down again: refreshes fail, the last good set keeps serving.
	hits := js.Hits.Load()
	srv.Close()
	time.Sleep(300 * time.Millisecond) // a few failed refreshes (min_refresh 100ms)
	wantAnswer(t, get(), 200, "")
	if js.Hits.Load() != hits {
		t.Logf("note: %d fetches raced the close", js.Hits.Load()-hits)
	}
}

// TestJWTAuthBadConfig: a bad jwt-auth config is refused with every problem named by
// file:line, route, plugin and field, and a reload with it keeps the old config serving.
func TestJWTAuthBadConfig(t *testing.T) {
	bad := `listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets: [{address: 127.0.0.1:1}]
routes:
  - id: api
    upstream: echo
    plugins:
      - name: jwt-auth
        config:
          algorithms: [HS256, none]
          keys:
            - secret: short
            - public_key_file: /nonexistent.pem
            - {}
          jwks: {url: "ftp://x"}
          clock_skew: 1h
          forward_claims: [{claim: sub, header: "Bad Header"}]
`
	// A running gateway is reloaded with it: the reload fails, the old config serves on.
	tg, sig, _, _ := jwtGateway(t)
	cfg, err := config.Parse("test.yaml", []byte(bad))
	if err == nil {
		err = tg.gw.Apply(cfg)
	}
	if err == nil {
		t.Fatal("bad config accepted")
	}
	req, _ := http.NewRequest("GET", tg.url("/static"), nil)
	req.Header.Set("Authorization", "Bearer "+sig["ES256"].Sign(t, "", jwttest.Claims("alice")))
	wantAnswer(t, sendReq(t, newClient(), req), 200, "")
	for _, want := range []string{
		`test.yaml:12: routes[0].plugins[0].config.algorithms[1]: route "api": plugin jwt-auth: "none" is not supported`,
		`test.yaml:14: routes[0].plugins[0].config.keys[0].secret: route "api": plugin jwt-auth: 5 bytes is too short`,
		`test.yaml:15: routes[0].plugins[0].config.keys[1].public_key_file: route "api": plugin jwt-auth: open /nonexistent.pem`,
		`test.yaml:16: routes[0].plugins[0].config.keys[2]: route "api": plugin jwt-auth: give exactly one of`,
		`test.yaml:17: routes[0].plugins[0].config.jwks.url: route "api": plugin jwt-auth: want an http:// or https:// URL`,
		`test.yaml:18: routes[0].plugins[0].config.clock_skew: route "api": plugin jwt-auth: 1h0m0s is more than 10m0s`,
		`routes[0].plugins[0].config.forward_claims[0].header: route "api": plugin jwt-auth: "Bad Header" is not a valid header name`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
}

// TestJWTAuthUnknownField: a misspelt field is refused with its line and the field meant.
func TestJWTAuthUnknownField(t *testing.T) {
	cfg, err := config.Parse("test.yaml", []byte(`listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets: [{address: 127.0.0.1:1}]
routes:
  - id: api
    upstream: echo
    plugins:
      - name: jwt-auth
        config:
          keys: [{secret: "0123456789abcdef0123456789abcdef"}]
          isuer: https://issuer.test
`))
	if err == nil {
		err = New(testLogger(t), nil).Apply(cfg)
	}
	want := `test.yaml:13: routes[0].plugins[0].config.isuer: route "api": plugin jwt-auth: unknown field "isuer" (did you mean "issuer"?)`
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("error %v, want %q", err, want)
	}
}

// sendReq sends req, reads and closes the body, and returns the response.
func sendReq(t *testing.T, c *http.Client, req *http.Request) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	resp, err := c.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL, err)
	}
	resp.Body.Close()
	return resp
}

// TestJWTAuthSecretRedacted: /admin/config never shows a jwt-auth HMAC secret.
func TestJWTAuthSecretRedacted(t *testing.T) {
	secret := "hmac-secret-that-must-not-leak-0123456789"
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: echo
    targets: [{address: 127.0.0.1:1}]
plugins:
  - name: jwt-auth
    config: {keys: [{id: k1, secret: "{{secret}}"}]}
routes:
  - id: api
    upstream: echo
    plugins:
      - name: jwt-auth
        config: {keys: [{secret: "{{secret}}"}]}
admin: {address: "127.0.0.1:0"}
`, map[string]string{"secret": secret})
	resp, err := http.Get(tg.adminURL("/admin/config"))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), secret) || strings.Count(string(body), `redacted`) < 2 {
		t.Fatalf("/admin/config shows a secret or redacts too little:\n%s", body)
	}
}
