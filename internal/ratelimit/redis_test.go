package ratelimit

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"sluice/internal/testutil"
)

func newClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	// DialTimeout 5s, not the default 1s: a test opens up to 32 conns at once, and on a loaded
	// machine (CI runs every package at once) a dial and its handshake with a starved
	// redis-server took longer than 1s (10 of 800 decisions failed once at a load of 25).
	c := NewClient(ClientOptions{Addr: addr, PoolSize: 32, DialTimeout: 5 * time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

// TestRedisExactUnderConcurrency: two clients (as two gateways would, each with its own
// connection pool) with 16 goroutines each send 400 requests on one key as fast as they
// can; together they admit exactly the limit, for each algorithm. The windows are an hour
// long so the whole run lands in one of them (the test waits out a boundary that is near).
func TestRedisExactUnderConcurrency(t *testing.T) {
	srv := testutil.StartRedis(t)
	tests := []struct {
		name string
		rule Rule
		want int64
	}{
		{"gcra", Rule{Algorithm: GCRA, Limit: 1, Window: time.Hour, Burst: 49}, 50},
		{"sliding window", Rule{Algorithm: SlidingWindow, Limit: 50, Window: time.Hour}, 50},
		{"fixed window", Rule{Algorithm: FixedWindow, Limit: 50, Window: time.Hour}, 50},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.rule.Algorithm == FixedWindow {
				waitAwayFromBoundary(t, newClient(t, srv.Addr()), tc.rule.Window)
			}
			prefix := "test:" + strings.ReplaceAll(tc.name, " ", "_") + ":"
			gateways := []*Redis{
				NewRedis(tc.rule, newClient(t, srv.Addr()), RedisOptions{Prefix: prefix, Timeout: 5 * time.Second}),
				NewRedis(tc.rule, newClient(t, srv.Addr()), RedisOptions{Prefix: prefix, Timeout: 5 * time.Second}),
			}
			var admitted, failed atomic.Int64
			var firstErr atomic.Value
			var wg sync.WaitGroup
			for _, g := range gateways {
				for range 16 {
					wg.Go(func() {
						for range 25 {
							d, err := g.Allow(context.Background(), []byte("shared"))
							if err != nil {
								failed.Add(1)
								firstErr.CompareAndSwap(nil, err.Error())
							} else if d.Allowed {
								admitted.Add(1)
							}
						}
					})
				}
			}
			wg.Wait()
			if failed.Load() != 0 {
				t.Fatalf("%d decisions failed, the first: %v", failed.Load(), firstErr.Load())
			}
			if got := admitted.Load(); got != tc.want {
				t.Fatalf("two gateways admitted %d of 800, want exactly %d", got, tc.want)
			}
			st0, st1 := gateways[0].Stats(), gateways[1].Stats()
			if st0.Admitted+st1.Admitted != tc.want || st0.Limited+st1.Limited != 800-tc.want {
				t.Fatalf("stats %+v %+v do not add up", st0, st1)
			}
			// The key expires: it lives while it limits anything, not forever.
			// GCRA: until the bucket is full again; windows: the current and the next window.
			maxTTL := 2 * tc.rule.Window
			if tc.rule.Algorithm == GCRA {
				maxTTL = time.Duration(tc.rule.Burst+1)*tc.rule.Window/time.Duration(tc.rule.Limit) + time.Millisecond
			}
			ttl, err := newClient(t, srv.Addr()).PTTL(context.Background(), prefix+"shared").Result()
			if err != nil || ttl <= 0 || ttl > maxTTL {
				t.Fatalf("key TTL %v (%v), want in (0, %v]", ttl, err, maxTTL)
			}
		})
	}
}

// waitAwayFromBoundary waits (with the server's clock) until the current window has at
// least a minute left; an hour-long window makes that wait rare and short.
func waitAwayFromBoundary(t *testing.T, c *redis.Client, w time.Duration) {
	t.Helper()
	for i := 0; i < 70; i++ {
		now, err := c.Time(context.Background()).Result()
		if err != nil {
			t.Fatal(err)
		}
		if left := w - time.Duration(now.UnixNano()%int64(w)); left > time.Minute {
			return
		}
		time.Sleep(time.Second)
	}
}

// TestRedisMatchesLocal: the Lua script and the Go decisions are the same algorithm: the
// same sequence of requests (one client, so the server's clock moves little between them)
// gets the same answers from both, remaining counts included.
func TestRedisMatchesLocal(t *testing.T) {
	srv := testutil.StartRedis(t)
	c := newClient(t, srv.Addr())
	for _, rule := range []Rule{
		{Algorithm: GCRA, Limit: 3, Window: time.Hour, Burst: 4},
		{Algorithm: SlidingWindow, Limit: 5, Window: time.Hour},
	} {
		r := NewRedis(rule, c, RedisOptions{Prefix: "match:" + rule.Algorithm.String() + ":", Timeout: 5 * time.Second})
		l := NewLocal(rule, 10)
		for i := range 8 {
			rd, err := r.Allow(context.Background(), []byte("k"))
			if err != nil {
				t.Fatal(err)
			}
			ld := l.Allow([]byte("k"), time.Now())
			if rd.Allowed != ld.Allowed || rd.Remaining != ld.Remaining {
				t.Fatalf("%s request %d: redis allowed=%v remaining=%d, local %v %d", rule.Algorithm, i,
					rd.Allowed, rd.Remaining, ld.Allowed, ld.Remaining)
			}
			// A sliding window can make a refused request wait past the window's end: the
			// full current count becomes the previous one and must decay first (early in a
			// window, limit 5: up to 1/5 of the next window). 2 windows bound it.
			if !rd.Allowed && (rd.RetryAfter <= 0 || rd.RetryAfter > 2*rule.Window) {
				t.Fatalf("%s request %d: retry after %v", rule.Algorithm, i, rd.RetryAfter)
			}
		}
	}
}

// TestRedisScriptFlushed: EVALSHA falls back to EVAL when the server lost the script
// (restart, SCRIPT FLUSH, failover to a replica that never saw it).
func TestRedisScriptFlushed(t *testing.T) {
	srv := testutil.StartRedis(t)
	c := newClient(t, srv.Addr())
	r := NewRedis(Rule{Algorithm: GCRA, Limit: 10, Window: time.Second}, c, RedisOptions{Prefix: "flush:", Timeout: 5 * time.Second})
	for i := range 3 {
		if err := c.ScriptFlush(context.Background()).Err(); err != nil {
			t.Fatal(err)
		}
		if _, err := r.Allow(context.Background(), []byte("k")); err != nil {
			t.Fatalf("decision %d after SCRIPT FLUSH: %v", i, err)
		}
	}
}

// TestRedisDownPolicyAndRecovery: Redis killed mid-test; the allow policy admits, the deny
// policy refuses, each counted and logged (throttled), without waiting longer than the
// timeout; when Redis is back, both limit from Redis again.
func TestRedisDownPolicyAndRecovery(t *testing.T) {
	srv := testutil.StartRedis(t)
	rule := Rule{Algorithm: GCRA, Limit: 1, Window: time.Hour} // one request per key per hour
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(lockedWriter{&logs, &logMu}, nil))
	open := NewRedis(rule, newClient(t, srv.Addr()), RedisOptions{Prefix: "open:", Timeout: 200 * time.Millisecond,
		OnError: Allow, Backoff: 50 * time.Millisecond, Logger: logger, LogEvery: time.Hour})
	closed := NewRedis(rule, newClient(t, srv.Addr()), RedisOptions{Prefix: "closed:", Timeout: 200 * time.Millisecond,
		OnError: Deny, Logger: logger})
	ctx := context.Background()
	check := func(what string, r *Redis, key string, allowed, degraded bool) {
		t.Helper()
		start := time.Now()
		d, err := r.Allow(ctx, []byte(key))
		if d.Allowed != allowed || d.Degraded != degraded || (err != nil) != degraded {
			t.Fatalf("%s: allowed=%v degraded=%v err=%v, want allowed=%v degraded=%v", what, d.Allowed, d.Degraded, err, allowed, degraded)
		}
		if took := time.Since(start); took > time.Second {
			t.Fatalf("%s took %v: the wait for Redis is not bounded", what, took)
		}
	}
	check("open, first", open, "a", true, false)
	check("open, second", open, "a", false, false)
	check("closed, first", closed, "a", true, false)
	check("closed, second", closed, "a", false, false)

	srv.Stop()
	for range 5 {
		check("open while down", open, "a", true, true)
		check("closed while down", closed, "b", false, true)
	}
	so, sc := open.Stats(), closed.Stats()
	if so.FailOpen != 5 || so.FailClosed != 0 || sc.FailClosed != 5 || sc.StoreErrors != 5 {
		t.Fatalf("stats open %+v closed %+v", so, sc)
	}
	if so.StoreErrors < 1 || so.StoreErrors > 5 {
		t.Fatalf("open limiter tried Redis %d times; with a backoff it skips it", so.StoreErrors)
	}
	logMu.Lock()
	warns := strings.Count(logs.String(), "redis rate limit failed")
	logMu.Unlock()
	if warns != 2 {
		t.Fatalf("%d failure log lines for 10 failures of 2 limiters, want 2 (LogEvery throttles them):\n%s", warns, logs.String())
	}

	srv.Start() // empty: no persistence
	testutil.WaitFor(t, 5*time.Second, "the allow policy's limiter to use Redis again", func() bool {
		d, _ := open.Allow(ctx, []byte("c"))
		return !d.Degraded
	})
	check("open, recovered", open, "c", false, false) // "c" was counted by the probe above
	check("closed, recovered", closed, "b", true, false)
	check("closed, recovered, second", closed, "b", false, false)
	logMu.Lock()
	defer logMu.Unlock()
	if !strings.Contains(logs.String(), "redis rate limit recovered") {
		t.Fatalf("no recovery log line:\n%s", logs.String())
	}
}

// TestRedisSlowPolicy: a Redis that does not answer (CLIENT PAUSE) costs a decision at
// most the timeout, or less when the request's own deadline is nearer.
func TestRedisSlowPolicy(t *testing.T) {
	srv := testutil.StartRedis(t)
	admin := newClient(t, srv.Addr())
	r := NewRedis(Rule{Algorithm: GCRA, Limit: 10, Window: time.Second}, newClient(t, srv.Addr()),
		RedisOptions{Prefix: "slow:", Timeout: 150 * time.Millisecond, OnError: Deny})
	if _, err := r.Allow(context.Background(), []byte("k")); err != nil {
		t.Fatal(err)
	}
	if err := admin.Do(context.Background(), "CLIENT", "PAUSE", "1000", "ALL").Err(); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d, err := r.Allow(context.Background(), []byte("k"))
	took := time.Since(start)
	if err == nil || d.Allowed || !d.Degraded {
		t.Fatalf("paused Redis: %+v, %v; want a degraded refusal", d, err)
	}
	if took < 100*time.Millisecond || took > time.Second {
		t.Fatalf("decision took %v, want about the 150ms timeout", took)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	start = time.Now()
	if _, err := r.Allow(ctx, []byte("k")); err == nil {
		t.Fatal("paused Redis answered")
	}
	if took := time.Since(start); took > 120*time.Millisecond {
		t.Fatalf("decision took %v with a 30ms request deadline", took)
	}
}

type lockedWriter struct {
	b  *bytes.Buffer
	mu *sync.Mutex
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func BenchmarkRedisAllow(b *testing.B) {
	srv := testutil.StartRedis(b)
	r := NewRedis(Rule{Algorithm: GCRA, Limit: 1 << 30, Window: time.Hour}, newClient(b, srv.Addr()),
		RedisOptions{Prefix: "bench:", Timeout: time.Second})
	key := []byte("client-203.0.113.7")
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := r.Allow(ctx, key); err != nil {
			b.Fatal(err)
		}
	}
}
