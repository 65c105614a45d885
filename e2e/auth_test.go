package e2e

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"sluice/internal/testutil"
	"sluice/internal/testutil/jwttest"
)

// TestAuthDocsAgainstBinary provokes every jwt-auth and forward-auth reason code of
// docs/errors.md from the sluice binary and checks the status the page gives it, then
// checks that /metrics has the plugins' metrics docs/metrics.md lists.
func TestAuthDocsAgainstBinary(t *testing.T) {
	live := okBackend(t)
	sig := jwttest.Signers()
	auth := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Header.Get("Authorization") {
		case "ok":
			w.Header().Set("X-Consumer", "alice")
		case "nobody":
		case "slow":
			select {
			case <-time.After(5 * time.Second):
			case <-r.Context().Done():
			}
		case "crash":
			w.WriteHeader(http.StatusBadGateway)
		default:
			http.Error(w, "no", http.StatusUnauthorized)
		}
	}))
	t.Cleanup(auth.Close)
	listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfg := configFile(t, fmt.Sprintf(`listeners:
  - {address: "%[1]s"}
upstreams:
  - {id: live, targets: [{address: "%[2]s"}]}
consumers:
  - name: alice
    credentials: {jwt-auth: {claim_value: alice}}
routes:
  - id: jwt
    match: {path_prefix: /jwt}
    upstream: live
    plugins:
      - name: jwt-auth
        config:
          algorithms: [HS256, ES256]
          keys: [{secret: "%[3]s"}]
          issuer: https://issuer.test
          audiences: [api]
          require_consumer: true
  - id: nokeys
    match: {path_prefix: /nokeys}
    upstream: live
    plugins:
      - name: jwt-auth
        config: {jwks: {url: "http://%[4]s/jwks", timeout: 500ms}}
  - id: fwd
    match: {path_prefix: /fwd}
    upstream: live
    plugins:
      - name: forward-auth
        config: {address: "%[5]s/check", timeout: 300ms, consumer_header: X-Consumer, require_consumer: true}
admin: {address: "%[6]s"}
log: {access: "off"}
`, listen, live, sig["HS256"].HMAC, testutil.RefusingAddr(t), auth.URL, admin))
	p := start(t, "run", cfg)
	p.waitLog(t, `"sluice started"`, 0)
	gw := "http://" + listen
	with := func(f func(jwt.MapClaims)) jwt.MapClaims { c := jwttest.Claims("alice"); f(c); return c }
	bearer := func(path, tok string) func() answer {
		return func() answer { return do(t, "GET", gw+path, map[string]string{"Authorization": "Bearer " + tok}, "") }
	}
	hs := sig["HS256"]
	provoke := map[string]func() answer{
		"jwt_missing":               func() answer { return do(t, "GET", gw+"/jwt", nil, "") },
		"jwt_malformed":             bearer("/jwt", "abc.def.ghi"),
		"jwt_algorithm_not_allowed": bearer("/jwt", jwttest.Signer{Alg: "HS512", HMAC: hs.HMAC}.Sign(t, "", jwttest.Claims("alice"))),
		"jwt_unknown_key":           bearer("/jwt", sig["ES256"].Sign(t, "", jwttest.Claims("alice"))),
		"jwt_bad_signature":         bearer("/jwt", jwttest.Signer{Alg: "HS256", HMAC: []byte("another-secret-of-32-bytes-00000")}.Sign(t, "", jwttest.Claims("alice"))),
		"jwt_expired":               bearer("/jwt", hs.Sign(t, "", with(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }))),
		"jwt_not_yet_valid":         bearer("/jwt", hs.Sign(t, "", with(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }))),
		"jwt_wrong_issuer":          bearer("/jwt", hs.Sign(t, "", with(func(c jwt.MapClaims) { c["iss"] = "https://other.test" }))),
		"jwt_wrong_audience":        bearer("/jwt", hs.Sign(t, "", with(func(c jwt.MapClaims) { c["aud"] = "billing" }))),
		"jwt_invalid_claims":        bearer("/jwt", hs.Sign(t, "", with(func(c jwt.MapClaims) { delete(c, "exp") }))),
		"jwt_unknown_consumer":      bearer("/jwt", hs.Sign(t, "", jwttest.Claims("bob"))),
		"jwt_keys_unavailable":      bearer("/nokeys", sig["ES256"].Sign(t, "k", jwttest.Claims("alice"))),
		"auth_denied":               func() answer { return do(t, "GET", gw+"/fwd", map[string]string{"Authorization": "bad"}, "") },
		"auth_unavailable":          func() answer { return do(t, "GET", gw+"/fwd", map[string]string{"Authorization": "crash"}, "") },
		"auth_timeout":              func() answer { return do(t, "GET", gw+"/fwd", map[string]string{"Authorization": "slow"}, "") },
		"auth_unknown_consumer":     func() answer { return do(t, "GET", gw+"/fwd", map[string]string{"Authorization": "nobody"}, "") },
	}
	if a := bearer("/jwt", hs.Sign(t, "", jwttest.Claims("alice")))(); a.status != 200 {
		t.Fatalf("a valid token: %d %s", a.status, a.code)
	}
	if a := do(t, "GET", gw+"/fwd", map[string]string{"Authorization": "ok"}, ""); a.status != 200 {
		t.Fatalf("an allowed request: %d %s", a.status, a.code)
	}
	for _, row := range docTable(t, "errors.md", "code") {
		code := unquote(row[0])
		f, ok := provoke[code]
		if !ok {
			continue
		}
		delete(provoke, code)
		a := f()
		if code == "auth_denied" { // the auth service's own answer, without X-Sluice-Error
			if a.status != 401 || a.body != "no\n" || a.code != "" {
				t.Errorf("auth_denied: %d %q %q, want the service's 401 \"no\"", a.status, a.code, a.body)
			}
			continue
		}
		status, err := strconv.Atoi(strings.Fields(row[1])[0])
		if err != nil {
			t.Errorf("docs/errors.md: %s: status %q is not a number", code, row[1])
			continue
		}
		if a.status != status || a.code != code {
			t.Errorf("docs/errors.md says %s is %d; the binary answered %d %q", code, status, a.status, a.code)
		}
	}
	for code := range provoke {
		t.Errorf("%s is provoked here but not in docs/errors.md's tables", code)
	}
	m := do(t, "GET", "http://"+admin+"/metrics", nil, "")
	for _, re := range []string{
		`sluice_jwks_fetches_total\{place="nokeys",plugin="jwt-auth",result="failure"\} [1-9]`,
		`sluice_jwks_keys\{place="nokeys",plugin="jwt-auth"\} 0`,
		`sluice_forward_auth_checks_total\{outcome="timeout",place="fwd",plugin="forward-auth"\} 1`,
		`sluice_forward_auth_checks_total\{outcome="allowed",place="fwd",plugin="forward-auth"\} 2`,
	} {
		if !regexp.MustCompile(re).MatchString(m.body) {
			t.Errorf("/metrics lacks %s:\n%s", re, grepLines(m.body, "jwks")+"\n"+grepLines(m.body, "forward_auth"))
		}
	}
	if strings.Contains(p.logs(), hs.Sign(t, "", jwttest.Claims("alice"))[:40]) {
		t.Errorf("a token header is in the logs")
	}
}
