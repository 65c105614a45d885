package jwtauth

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
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// signer is a private key with the algorithm it signs with.
type signer struct {
	alg  string
	priv crypto.Signer // nil for HMAC
	hmac []byte
}

func (s signer) public() any {
	if s.priv == nil {
		return s.hmac
	}
	return s.priv.Public()
}

func (s signer) sign(t testing.TB, kid string, claims jwt.MapClaims) string {
	t.Helper()
	tok := jwt.NewWithClaims(jwt.GetSigningMethod(s.alg), claims)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	var key any = s.priv
	if s.priv == nil {
		key = s.hmac
	}
	str, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return str
}

// pemOf returns the public key in PKIX PEM.
func (s signer) pemOf(t testing.TB) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(s.public())
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// jwkOf returns the public key as a JWK map.
func (s signer) jwkOf(kid string) map[string]any {
	enc := base64.RawURLEncoding.EncodeToString
	m := map[string]any{"kid": kid, "use": "sig", "alg": s.alg}
	switch p := s.public().(type) {
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
	keysOnce sync.Once
	rsaKey   *rsa.PrivateKey
	rsaKey2  *rsa.PrivateKey
)

// testSigners returns one signer per headline algorithm. RSA keys are made once.
func testSigners(t testing.TB) map[string]signer {
	t.Helper()
	keysOnce.Do(func() {
		rsaKey, _ = rsa.GenerateKey(rand.Reader, 2048)
		rsaKey2, _ = rsa.GenerateKey(rand.Reader, 2048)
	})
	ec, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	_, ed, _ := ed25519.GenerateKey(rand.Reader)
	return map[string]signer{
		"HS256": {alg: "HS256", hmac: []byte("0123456789abcdef0123456789abcdef")},
		"RS256": {alg: "RS256", priv: rsaKey},
		"ES256": {alg: "ES256", priv: ec},
		"EdDSA": {alg: "EdDSA", priv: ed},
	}
}

// jwksServer serves a key set that tests can replace, and counts its fetches.
type jwksServer struct {
	*httptest.Server
	mu       sync.Mutex
	keys     []map[string]any
	cache    string // Cache-Control value, "" for none
	status   int    // 0: 200
	delay    time.Duration
	hits     atomic.Int64
	etag     string
	notModOK atomic.Int64
}

func newJWKSServer(t testing.TB, keys ...map[string]any) *jwksServer {
	t.Helper()
	js := &jwksServer{keys: keys}
	js.Server = httptest.NewServer(http.HandlerFunc(js.serve))
	t.Cleanup(js.Close)
	return js
}

func (js *jwksServer) serve(w http.ResponseWriter, r *http.Request) {
	js.hits.Add(1)
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
			js.notModOK.Add(1)
			w.WriteHeader(http.StatusNotModified)
			return
		}
		w.Header().Set("ETag", etag)
	}
	w.Header().Set("Content-Type", "application/jwk-set+json")
	json.NewEncoder(w).Encode(map[string]any{"keys": keys})
}

func (js *jwksServer) set(f func(js *jwksServer)) {
	js.mu.Lock()
	defer js.mu.Unlock()
	f(js)
}

// claims returns valid claims for iss/aud "test", expiring in an hour.
func claims(now time.Time) jwt.MapClaims {
	return jwt.MapClaims{"sub": "alice", "iss": "https://issuer.test", "aud": "api",
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix()}
}
