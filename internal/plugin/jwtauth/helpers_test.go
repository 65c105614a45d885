package jwtauth

import (
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"sluice/internal/testutil/jwttest"
)

type signer = jwttest.Signer

func testSigners(testing.TB) map[string]signer { return jwttest.Signers() }

// claims returns valid claims for iss "https://issuer.test" and aud "api", expiring in an
// hour from now.
func claims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{"sub": "alice", "iss": "https://issuer.test", "aud": "api",
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix()}
}

func newJWKSServer(t testing.TB, keys ...map[string]any) *jwttest.JWKSServer {
	return jwttest.NewJWKSServer(t, keys...)
}
