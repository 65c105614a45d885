package jwtauth

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"sluice/internal/reason"
	"sluice/internal/testutil/jwttest"
)

// staticVerifier verifies with the four headline algorithms, one static key each.
func staticVerifier(t testing.TB, sig map[string]signer, now time.Time, mod func(*Options)) *Verifier {
	t.Helper()
	keys := []Key{SecretKey("", sig["HS256"].HMAC)}
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		k, err := ParsePEM("", sig[alg].PEM(t))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k...)
	}
	o := Options{
		Algorithms: []string{"HS256", "RS256", "ES256", "EdDSA"},
		Keys:       NewKeySet(keys), Issuer: "https://issuer.test", Audiences: []string{"api", "other"},
		Leeway: 30 * time.Second, RequireExp: true, ConsumerClaim: "sub",
		Now: func() time.Time { return now },
	}
	if mod != nil {
		mod(&o)
	}
	v, err := NewVerifier(o)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestVerify(t *testing.T) {
	sig := testSigners(t)
	now := time.Now()
	v := staticVerifier(t, sig, now, nil)
	with := func(f func(c jwt.MapClaims)) jwt.MapClaims { c := claims(now); f(c); return c }
	rsOther := signer{Alg: "RS256", Priv: jwttest.RSA(1)}
	rsPEM := sig["RS256"].PEM(t)

	tests := []struct {
		name  string
		token string
		want  reason.Code // failure code, "" for valid
	}{
		{name: "HS256", token: sig["HS256"].Sign(t, "", claims(now))},
		{name: "RS256", token: sig["RS256"].Sign(t, "", claims(now))},
		{name: "ES256", token: sig["ES256"].Sign(t, "", claims(now))},
		{name: "EdDSA", token: sig["EdDSA"].Sign(t, "", claims(now))},
		{name: "kid of no key falls back to unnamed keys", token: sig["RS256"].Sign(t, "k9", claims(now))},
		{name: "second audience", token: sig["ES256"].Sign(t, "", with(func(c jwt.MapClaims) { c["aud"] = []string{"x", "other"} }))},
		{name: "expired", token: sig["RS256"].Sign(t, "", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-time.Minute).Unix() })), want: FailExpired},
		{name: "expired within leeway", token: sig["RS256"].Sign(t, "", with(func(c jwt.MapClaims) { c["exp"] = now.Add(-20 * time.Second).Unix() }))},
		{name: "not yet valid", token: sig["ES256"].Sign(t, "", with(func(c jwt.MapClaims) { c["nbf"] = now.Add(time.Minute).Unix() })), want: FailNotYetValid},
		{name: "nbf within leeway", token: sig["ES256"].Sign(t, "", with(func(c jwt.MapClaims) { c["nbf"] = now.Add(20 * time.Second).Unix() }))},
		{name: "wrong issuer", token: sig["EdDSA"].Sign(t, "", with(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" })), want: FailIssuer},
		{name: "no issuer", token: sig["EdDSA"].Sign(t, "", with(func(c jwt.MapClaims) { delete(c, "iss") })), want: FailClaims},
		{name: "wrong audience", token: sig["HS256"].Sign(t, "", with(func(c jwt.MapClaims) { c["aud"] = "billing" })), want: FailAudience},
		{name: "no exp", token: sig["HS256"].Sign(t, "", with(func(c jwt.MapClaims) { delete(c, "exp") })), want: FailClaims},
		{name: "signed by another RSA key", token: rsOther.Sign(t, "", claims(now)), want: FailSignature},
		{name: "payload changed after signing", token: tamper(sig["ES256"].Sign(t, "", claims(now))), want: FailSignature},
		{name: "HS256 signed with another secret", token: signer{Alg: "HS256", HMAC: []byte("guess")}.Sign(t, "", claims(now)), want: FailSignature},
		{name: "alg none", token: noneToken(claims(now)), want: FailAlgorithm},
		{name: "alg not allowed", token: signer{Alg: "HS384", HMAC: sig["HS256"].HMAC}.Sign(t, "", claims(now)), want: FailAlgorithm},
		{name: "malformed", token: "not-a-token", want: FailMalformed},
		{name: "four segments", token: sig["HS256"].Sign(t, "", claims(now)) + ".x", want: FailMalformed},
		{name: "empty", token: "", want: FailMissing},
	}
	// Algorithm confusion: an HS256 token whose "secret" is the RSA public key (which is
	// public) must not verify against a verifier that holds that RSA key and allows HS256.
	rsOnly := staticVerifier(t, sig, now, func(o *Options) {
		k, _ := ParsePEM("", rsPEM)
		o.Keys = NewKeySet(k)
	})
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, e := v.Verify(context.Background(), tc.token)
			checkOutcome(t, r, e, tc.want)
		})
	}
	t.Run("alg confusion: RSA public key as HMAC secret", func(t *testing.T) {
		forged := signer{Alg: "HS256", HMAC: rsPEM}.Sign(t, "", claims(now))
		r, e := rsOnly.Verify(context.Background(), forged)
		checkOutcome(t, r, e, FailUnknownKey)
		r, e = rsOnly.Verify(context.Background(), sig["RS256"].Sign(t, "", claims(now)))
		checkOutcome(t, r, e, "")
	})
}

func checkOutcome(t *testing.T, r *Result, e *Error, want reason.Code) {
	t.Helper()
	switch {
	case want == "" && e != nil:
		t.Fatalf("want valid, got %v", e)
	case want == "" && r.Consumer != "alice":
		t.Fatalf("consumer %q, want alice", r.Consumer)
	case want != "" && e == nil:
		t.Fatalf("want %s, token verified", want)
	case want != "" && e.Code != want:
		t.Fatalf("want %s, got %v", want, e)
	case e != nil && (e.Description == "" || strings.ContainsAny(e.Description, "\"\\")):
		t.Fatalf("description %q not fit for WWW-Authenticate", e.Description)
	}
}

// tamper changes the payload (sub alice -> mallory) and keeps the signature.
func tamper(tok string) string {
	parts := strings.Split(tok, ".")
	p, _ := base64.RawURLEncoding.DecodeString(parts[1])
	p = []byte(strings.Replace(string(p), "alice", "mallory", 1))
	parts[1] = base64.RawURLEncoding.EncodeToString(p)
	return strings.Join(parts, ".")
}

func noneToken(c jwt.MapClaims) string {
	s, _ := jwt.NewWithClaims(jwt.SigningMethodNone, c).SignedString(jwt.UnsafeAllowNoneSignatureType)
	return s
}

func TestVerifyClaimValues(t *testing.T) {
	sig := testSigners(t)
	now := time.Now()
	v := staticVerifier(t, sig, now, func(o *Options) {
		o.ConsumerClaim = "client_id"
		o.ForwardClaims = []string{"sub", "roles", "realm_access.roles", "https://example.com/tenant", "n", "evil", "missing"}
	})
	c := claims(now)
	c["client_id"] = "mobile-app"
	c["roles"] = []string{"admin", "dev"}
	c["realm_access"] = map[string]any{"roles": []string{"r1"}}
	c["https://example.com/tenant"] = "t-1"
	c["n"] = 42
	c["evil"] = "x\r\nX-Admin: true"
	r, e := v.Verify(context.Background(), sig["ES256"].Sign(t, "", c))
	if e != nil {
		t.Fatal(e)
	}
	want := []string{"alice", "admin,dev", "r1", "t-1", "42", "", ""}
	if r.Consumer != "mobile-app" || strings.Join(r.Values, "|") != strings.Join(want, "|") {
		t.Fatalf("consumer %q values %q, want mobile-app %q", r.Consumer, r.Values, want)
	}
	if r.Expires.Unix() != now.Add(time.Hour).Unix() {
		t.Fatalf("expires %v", r.Expires)
	}
}

func TestNewVerifierErrors(t *testing.T) {
	keys := NewKeySet([]Key{SecretKey("", []byte("s"))})
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no algorithm", Options{Keys: keys}, "no algorithm"},
		{"none", Options{Keys: keys, Algorithms: []string{"none"}}, `"none" is not supported`},
		{"no key", Options{Algorithms: []string{"HS256"}}, "no key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewVerifier(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
