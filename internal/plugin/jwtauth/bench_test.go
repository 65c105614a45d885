package jwtauth

import (
	"context"
	"testing"
	"time"
)

// BenchmarkVerify measures one verification per algorithm: what a request pays without a
// cache of verified tokens.
func BenchmarkVerify(b *testing.B) {
	sig := testSigners(b)
	now := time.Now()
	v := staticVerifier(b, sig, now, func(o *Options) { o.ForwardClaims = []string{"sub", "iss"} })
	for _, alg := range []string{"HS256", "RS256", "ES256", "EdDSA"} {
		tok := sig[alg].Sign(b, "", claims(now))
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				if _, e := v.Verify(ctx, tok); e != nil {
					b.Fatal(e)
				}
			}
		})
	}
}

// BenchmarkCheckCached measures a request whose token was verified before (a cache hit).
func BenchmarkCheckCached(b *testing.B) {
	sig := testSigners(b)
	now := time.Now()
	v := staticVerifier(b, sig, now, func(o *Options) { o.CacheSize = 4096 })
	for _, alg := range []string{"HS256", "RS256", "ES256", "EdDSA"} {
		tok := []byte(sig[alg].Sign(b, "", claims(now)))
		b.Run(alg, func(b *testing.B) {
			b.ReportAllocs()
			ctx := context.Background()
			for b.Loop() {
				if _, e := v.Check(ctx, tok); e != nil {
					b.Fatal(e)
				}
			}
		})
	}
}
