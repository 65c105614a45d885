package jwtauth

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"sluice/internal/testutil"
	"sluice/internal/testutil/jwttest"
)

func TestCacheExpiry(t *testing.T) {
	sig := testSigners(t)
	start := time.Now()
	var clock atomic.Int64
	clock.Store(start.UnixNano())
	v := staticVerifier(t, sig, start, func(o *Options) {
		o.CacheSize = 64
		o.Leeway = 5 * time.Second
		o.Now = func() time.Time { return time.Unix(0, clock.Load()) }
	})
	c := claims(start)
	c["exp"] = start.Add(time.Minute).Unix()
	tok := []byte(sig["RS256"].Sign(t, "", c))
	for range 3 {
		if _, e := v.Check(context.Background(), tok); e != nil {
			t.Fatal(e)
		}
	}
	if v.CacheLen() != 1 {
		t.Fatalf("cache holds %d entries, want 1", v.CacheLen())
	}
	// Within the leeway after exp: still valid (cached or not, the same answer).
	clock.Store(start.Add(time.Minute + 4*time.Second).UnixNano())
	if _, e := v.Check(context.Background(), tok); e != nil {
		t.Fatalf("within leeway: %v", e)
	}
	// Past exp + leeway: the cached entry must not be served.
	clock.Store(start.Add(time.Minute + 6*time.Second).UnixNano())
	if _, e := v.Check(context.Background(), tok); e == nil || e.Code != FailExpired {
		t.Fatalf("after exp: %v, want %s", e, FailExpired)
	}
	// One byte changed in the signature: a miss, verified in full, refused.
	bad := append([]byte(nil), tok...)
	clock.Store(start.UnixNano())
	bad[len(bad)-3] ^= 1
	if _, e := v.Check(context.Background(), bad); e == nil {
		t.Fatal("a token one byte away from a cached one verified")
	}
}

func TestCacheBounded(t *testing.T) {
	sig := testSigners(t)
	now := time.Now()
	v := staticVerifier(t, sig, now, func(o *Options) { o.CacheSize = 32 })
	for i := range 500 {
		c := claims(now)
		c["jti"] = fmt.Sprint(i)
		if _, e := v.Check(context.Background(), []byte(sig["HS256"].Sign(t, "", c))); e != nil {
			t.Fatal(e)
		}
	}
	if n := v.CacheLen(); n > 32 || n < 16 {
		t.Fatalf("cache holds %d entries after 500 tokens, want 16..32", n)
	}
}

// TestCacheKeyRemoved: a token cached while its key was in the JWKS stops verifying once a
// refresh removes the key, though the entry has not expired.
func TestCacheKeyRemoved(t *testing.T) {
	sig := testSigners(t)
	js := newJWKSServer(t, sig["ES256"].JWK("e1"), sig["EdDSA"].JWK("d1"))
	js.Update(func(s *jwttest.State) { s.CacheControl = "max-age=3600" })
	j, _, _ := runJWKS(t, js.URL, nil)
	v, err := NewVerifier(Options{Algorithms: []string{"ES256", "EdDSA"}, JWKS: j, CacheSize: 64})
	if err != nil {
		t.Fatal(err)
	}
	tok := []byte(sig["ES256"].Sign(t, "e1", claims(time.Now())))
	for range 2 {
		if _, e := v.Check(context.Background(), tok); e != nil {
			t.Fatal(e)
		}
	}
	js.Update(func(s *jwttest.State) { s.Keys = s.Keys[1:]; s.CacheControl = "max-age=0" })
	// A token with an unknown kid asks for a refresh (MinRefresh 100ms apart).
	time.Sleep(120 * time.Millisecond)
	v.Check(context.Background(), []byte(sig["ES256"].Sign(t, "new", jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix()})))
	testutil.WaitFor(t, 3*time.Second, "the set without e1", func() bool { return j.Keys().Len() == 1 })
	if _, e := v.Check(context.Background(), tok); e == nil || e.Code != FailUnknownKey {
		t.Fatalf("cached token of a removed key: %v, want %s", e, FailUnknownKey)
	}
}
