package jwtauth

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/reason"
	"sluice/internal/testutil"
	"sluice/internal/testutil/jwttest"
)

// lockedBuffer is a log sink safe for the refresh goroutine and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// runJWKS starts a JWKS on url with fast test bounds, and a verifier over it.
func runJWKS(t *testing.T, url string, mod func(*JWKSOptions)) (*JWKS, *Verifier, *lockedBuffer) {
	t.Helper()
	logs := &lockedBuffer{}
	o := JWKSOptions{URL: url, Timeout: 2 * time.Second, MinRefresh: 100 * time.Millisecond,
		MaxRefresh: time.Hour, Logger: slog.New(slog.NewTextHandler(logs, nil))}
	if mod != nil {
		mod(&o)
	}
	j := NewJWKS(o)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { j.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	v, err := NewVerifier(Options{Algorithms: []string{"RS256", "ES256", "EdDSA"}, JWKS: j, ConsumerClaim: "sub"})
	if err != nil {
		t.Fatal(err)
	}
	return j, v, logs
}

func verifyCode(v *Verifier, tok string) reason.Code {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, e := v.Verify(ctx, tok); e != nil {
		return e.Code
	}
	return ""
}

func TestJWKSRotation(t *testing.T) {
	sig := testSigners(t)
	now := time.Now()
	k1, k2 := sig["RS256"], sig["ES256"]
	js := newJWKSServer(t, k1.JWK("k1"))
	js.Update(func(s *jwttest.State) { s.CacheControl = "max-age=3600" }) // only unknown kids refresh
	j, v, _ := runJWKS(t, js.URL, nil)
	old := k1.Sign(t, "k1", claims(now))
	if got := verifyCode(v, old); got != "" {
		t.Fatalf("k1 token before rotation: %s", got)
	}
	// The issuer publishes k2 and signs with it: the unknown kid triggers one refresh.
	js.Update(func(s *jwttest.State) { s.Keys = append(s.Keys, k2.JWK("k2")) })
	time.Sleep(150 * time.Millisecond) // past MinRefresh since the first fetch's ask
	hits := js.Hits.Load()
	if got := verifyCode(v, k2.Sign(t, "k2", claims(now))); got != "" {
		t.Fatalf("k2 token after the issuer added k2: %s", got)
	}
	if js.Hits.Load() != hits+1 || j.Stats().UnknownKIDFetches != 1 {
		t.Fatalf("fetches for the new kid: %d (stats %+v), want 1", js.Hits.Load()-hits, j.Stats())
	}
	// The issuer drops k1; once the set is refreshed, k1's tokens stop verifying.
	js.Update(func(s *jwttest.State) { s.Keys = s.Keys[1:]; s.CacheControl = "max-age=0" })
	time.Sleep(150 * time.Millisecond)
	if got := verifyCode(v, k2.Sign(t, "k3", claims(now))); got != FailUnknownKey { // asks for a refresh
		t.Fatalf("k3 token: %q, want %s", got, FailUnknownKey)
	}
	testutil.WaitFor(t, 3*time.Second, "k1 tokens to stop verifying", func() bool {
		return verifyCode(v, old) == FailUnknownKey
	})
	if got := verifyCode(v, k2.Sign(t, "k2", claims(now))); got != "" {
		t.Fatalf("k2 token after k1 was removed: %s", got)
	}
}

func TestJWKSUnknownKIDFlood(t *testing.T) {
	sig := testSigners(t)
	js := newJWKSServer(t, sig["EdDSA"].JWK("good"))
	js.Update(func(s *jwttest.State) { s.CacheControl = "max-age=3600" })
	j, v, _ := runJWKS(t, js.URL, func(o *JWKSOptions) { o.MinRefresh = time.Hour })
	now := time.Now()
	if got := verifyCode(v, sig["EdDSA"].Sign(t, "good", claims(now))); got != "" {
		t.Fatal(got)
	}
	// 200 tokens with made-up kids from 20 goroutines: at most one fetch (the rate limit
	// allows one per MinRefresh, and the first fetch at start already used it).
	start := time.Now()
	var wg sync.WaitGroup
	for g := range 20 {
		wg.Go(func() {
			for i := range 10 {
				tok := sig["EdDSA"].Sign(t, fmt.Sprintf("bogus-%d-%d", g, i), claims(now))
				if got := verifyCode(v, tok); got != FailUnknownKey {
					t.Errorf("bogus kid: %q", got)
				}
			}
		})
	}
	wg.Wait()
	if h := js.Hits.Load(); h > 2 {
		t.Fatalf("JWKS server hit %d times by a flood of unknown kids, want <= 2", h)
	}
	if s := j.Stats(); s.UnknownKIDLimited < 180 {
		t.Fatalf("rate-limited refreshes %d, want >= 180 (%+v)", s.UnknownKIDLimited, s)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("200 bogus kids took %v: the flood waited on refreshes", d)
	}
}

func TestJWKSDownAtStartThenUp(t *testing.T) {
	sig := testSigners(t)
	addr := testutil.FreeAddr(t)
	j, v, logs := runJWKS(t, "http://"+addr+"/jwks", nil)
	tok := sig["ES256"].Sign(t, "e1", claims(time.Now()))
	if got := verifyCode(v, tok); got != FailKeysDown {
		t.Fatalf("server down at start: %q, want %s", got, FailKeysDown)
	}
	// The server comes up on that address: a retry (backoff capped at MinRefresh) loads it.
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("dead port taken meanwhile: %v", err)
	}
	js := &jwttest.JWKSServer{}
	js.Update(func(s *jwttest.State) { s.Keys = []map[string]any{sig["ES256"].JWK("e1")} })
	srv := httptest.NewUnstartedServer(js)
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	defer srv.Close()
	testutil.WaitFor(t, 3*time.Second, "the key set to load", func() bool { return j.Keys() != nil })
	if got := verifyCode(v, tok); got != "" {
		t.Fatalf("after the server came up: %s", got)
	}
	if s := j.Stats(); s.Failures == 0 || !strings.Contains(logs.String(), "jwks fetch failed") {
		t.Fatalf("failures not counted or logged: %+v\n%s", s, logs)
	}
}

func TestJWKSDownLaterKeepsKeys(t *testing.T) {
	sig := testSigners(t)
	js := newJWKSServer(t, sig["RS256"].JWK("r1"))
	js.Update(func(s *jwttest.State) { s.CacheControl = "max-age=0" }) // refresh every MinRefresh
	j, v, logs := runJWKS(t, js.URL, nil)
	tok := sig["RS256"].Sign(t, "r1", claims(time.Now()))
	testutil.WaitFor(t, 3*time.Second, "first fetch", func() bool { return j.Keys() != nil })
	for _, breakIt := range []func(){
		func() { js.Update(func(s *jwttest.State) { s.Status = 503 }) },
		func() { js.Update(func(s *jwttest.State) { s.Status = 0; s.Keys = nil }) }, // empty set
		func() { js.CloseClientConnections(); js.Listener.Close() },                 // refused
	} {
		before := j.Stats().Failures
		breakIt()
		testutil.WaitFor(t, 3*time.Second, "a failed refresh", func() bool { return j.Stats().Failures > before })
		if got := verifyCode(v, tok); got != "" {
			t.Fatalf("token after a failed refresh: %s (the last good set must be kept)", got)
		}
	}
	if !strings.Contains(logs.String(), "keeping the last good key set") {
		t.Fatalf("no warning logged:\n%s", logs)
	}
}

func TestJWKSNotModified(t *testing.T) {
	sig := testSigners(t)
	js := newJWKSServer(t, sig["EdDSA"].JWK("d1"))
	js.Update(func(s *jwttest.State) { s.CacheControl, s.ETag = "max-age=0", `"v1"` })
	j, v, _ := runJWKS(t, js.URL, nil)
	// Wait on the fetcher's own count: the server counts a 304 before the fetcher has read it.
	testutil.WaitFor(t, 3*time.Second, "two 304 answers", func() bool { return js.NotModified.Load() >= 2 && j.Stats().NotModified >= 2 })
	if s := j.Stats(); s.NotModified < 2 || s.Keys != 1 {
		t.Fatalf("stats %+v", s)
	}
	if got := verifyCode(v, sig["EdDSA"].Sign(t, "d1", claims(time.Now()))); got != "" {
		t.Fatal(got)
	}
}

func TestJWKSSlowServerBoundsTheWait(t *testing.T) {
	sig := testSigners(t)
	js := newJWKSServer(t, sig["EdDSA"].JWK("d1"))
	js.Update(func(s *jwttest.State) { s.Delay = 10 * time.Second })
	j, v, _ := runJWKS(t, js.URL, func(o *JWKSOptions) { o.Timeout = 200 * time.Millisecond })
	start := time.Now()
	if got := verifyCode(v, sig["EdDSA"].Sign(t, "d1", claims(time.Now()))); got != FailKeysDown {
		t.Fatalf("slow JWKS: %q, want %s", got, FailKeysDown)
	}
	if d := time.Since(start); d > time.Second {
		t.Fatalf("request waited %v for a JWKS fetch bounded at 200ms", d)
	}
	testutil.WaitFor(t, 3*time.Second, "a timed-out fetch counted", func() bool { return j.Stats().Failures > 0 })
}

func TestJWKSBodyTooLarge(t *testing.T) {
	sig := testSigners(t)
	var keys []map[string]any
	for i := range 50 {
		keys = append(keys, sig["RS256"].JWK(fmt.Sprint("r", i)))
	}
	js := newJWKSServer(t, keys...)
	j, _, _ := runJWKS(t, js.URL, func(o *JWKSOptions) { o.MaxBytes = 4096 })
	testutil.WaitFor(t, 3*time.Second, "a failed fetch", func() bool { return j.Stats().Failures > 0 })
	if s := j.Stats(); !strings.Contains(s.LastError, "larger than 4096") || s.Keys != 0 {
		t.Fatalf("stats %+v", s)
	}
}

func TestNextRefresh(t *testing.T) {
	j := NewJWKS(JWKSOptions{MinRefresh: 10 * time.Second, MaxRefresh: time.Hour, RefreshInterval: 5 * time.Minute})
	for _, tc := range []struct {
		cc   []string
		want time.Duration
	}{
		{nil, 5 * time.Minute},
		{[]string{"max-age=100"}, 100 * time.Second},
		{[]string{"public, max-age=60, must-revalidate"}, time.Minute},
		{[]string{"max-age=1"}, 10 * time.Second},
		{[]string{"max-age=99999999999999"}, time.Hour},
		{[]string{"no-store"}, 10 * time.Second},
		{[]string{"max-age=abc"}, 5 * time.Minute},
		{[]string{"private", `max-age="120"`}, 2 * time.Minute},
	} {
		if got := j.nextRefresh(tc.cc); got != tc.want {
			t.Errorf("Cache-Control %q: %v, want %v", tc.cc, got, tc.want)
		}
	}
}
