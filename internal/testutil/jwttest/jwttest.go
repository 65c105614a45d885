// Package jwttest makes keys, signed tokens and a JWKS server for the tests of jwt-auth (its
// package's and the gateway's end-to-end ones).
package jwttest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Signer is a private key (or an HMAC secret) with the algorithm it signs with.
type Signer struct {
	Alg  string
	Priv crypto.Signer // nil for HMAC
	HMAC []byte
}

// Public returns the verification key.
func (s Signer) Public() any {
	if s.Priv == nil {
		return s.HMAC
	}
	return s.Priv.Public()
}

// Sign returns a token of claims, with header kid when not "".
func (s Signer) Sign(t testing.TB, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(s.Alg), claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	var key any = s.Priv
	if s.Priv == nil {
		key = s.HMAC
	}
	str, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return str
}

// PEM returns the public key in PKIX PEM.
func (s Signer) PEM(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// PEMFile writes the public key to a PEM file in a temporary directory and returns its path.
func (s Signer) PEMFile(t testing.TB) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), s.Alg+".pem")
	if err := os.WriteFile(p, s.PEM(t), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// JWK returns the public key as a JWK with kid.
func (s Signer) JWK(kid string) map[string]any {
	enc := base64.RawURLEncoding.EncodeToString
	m := map[string]any{"kid": kid, "use": "sig", "alg": s.Alg}
	switch p := s.Public().(type) {
	case *rsa.PublicKey:
		m["kty"], m["n"], m["e"] = "RSA", enc(p.N.Bytes()), enc(big.NewInt(int64(p.E)).Bytes())
	case *ecdsa.PublicKey:
		b, _ := p.Bytes()
		m["kty"], m["crv"], m["x"], m["y"] = "EC", "P-256", enc(b[1:33]), enc(b[33:])
	case ed25519.PublicKey:
		m["kty"], m["crv"], m["x"] = "OKP", "Ed25519", enc(p)
	}
	return m
}

var (
	rsaOnce sync.Once
	rsaKeys [2]*rsa.PrivateKey
)

// RSA returns one of two RSA-2048 keys (i is 0 or 1), made once per test binary.
func RSA(i int) *rsa.PrivateKey {
	rsaOnce.Do(func() {
		for j := range rsaKeys {
			rsaKeys[j], _ = rsa.GenerateKey(rand.Reader, 2048)
		}
	})
	return rsaKeys[i]
}

// Signers returns one new signer per headline algorithm: HS256, RS256, ES256, EdDSA.
func Signers() map[string]Signer {
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	secret := make([]byte, 32)
	rand.Read(secret)
	for i := range secret {
		secret[i] = 'a' + secret[i]%26 // printable, to sit in YAML
	}
	return map[string]Signer{
		"HS256": {Alg: "HS256", HMAC: secret},
		"RS256": {Alg: "RS256", Priv: RSA(0)},
		"ES256": {Alg: "ES256", Priv: ec},
		"EdDSA": {Alg: "EdDSA", Priv: ed},
	}
}

// Claims returns valid claims for sub, iss "https://issuer.test" and aud "api", issued now
// and expiring in an hour.
func Claims(sub string) jwt.MapClaims {
	now := time.Now()
	return jwt.MapClaims{"sub": sub, "iss": "https://issuer.test", "aud": "api",
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix()}
}

// JWKSServer serves a key set that tests change, and counts its requests.
type JWKSServer struct {
	*httptest.Server
	Hits        atomic.Int64
	NotModified atomic.Int64

	mu     sync.Mutex
	keys   []map[string]any
	cache  string
	status int
	delay  time.Duration
	etag   string
}

// NewJWKSServer starts a JWKS server with keys; it is closed when the test ends.
func NewJWKSServer(t testing.TB, keys ...map[string]any) *JWKSServer {
	t.Helper()
	js := &JWKSServer{keys: keys}
	js.Server = httptest.NewServer(http.HandlerFunc(js.ServeHTTP))
	t.Cleanup(js.Close)
	return js
}

// State is what a JWKSServer answers.
type State struct {
	Keys         []map[string]any
	CacheControl string        // "" for none
	Status       int           // 0: 200 with the keys
	Delay        time.Duration // before answering
	ETag         string        // "" for none
}

// Update changes the server's answer.
func (js *JWKSServer) Update(f func(s *State)) {
	js.mu.Lock()
	defer js.mu.Unlock()
	s := State{js.keys, js.cache, js.status, js.delay, js.etag}
	f(&s)
	js.keys, js.cache, js.status, js.delay, js.etag = s.Keys, s.CacheControl, s.Status, s.Delay, s.ETag
}

// ServeHTTP answers a key set request.
func (js *JWKSServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	js.Hits.Add(1)
	js.mu.Lock()
	keys, cc, status, delay, etag := js.keys, js.cache, js.status, js.delay, js.etag
	js.mu.Unlock()
	if delay > 0 {
		select {
		case <-time.After(delay):
		case <-r.Context().Done():
			return
		}
	}
	if cc != "" {
		w.Header().Set("Cache-Control", cc)
	}
	if status != 0 {
		w.WriteHeader(status)
		return
	}
	if etag != "" {
		if r.Header.Get("If-None-Match") == etag {
			js.NotModified.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	json.NewEncoder(w).Encode(map[string]any{"keys": keys})
}
