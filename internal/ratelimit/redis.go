package ratelimit

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// decideScript is the whole decision in one Lua script, run atomically by Redis: read the
// key's state, take the time from the server (redis TIME, so gateways with skewed clocks
// still share one timeline), decide, write the new state with a TTL. No other client's
// command can run between the read and the write, which is what a GET then SET cannot
// promise (apache/apisix#12592 admitted 3.6x its limit that way).
//
//go:embed decide.lua
var decideScript string

var script = redis.NewScript(decideScript)

// OnError is what a Redis limiter decides when Redis fails or is slow.
type OnError uint8

const (
	// Allow admits the request (fail open): Redis trouble never refuses traffic, and the
	// limit is not enforced meanwhile.
	Allow OnError = iota
	// Deny refuses the request (fail closed) with 503 rate_limit_unavailable.
	Deny
)

// ParseOnError returns the OnError named s ("allow" or "deny").
func ParseOnError(s string) (OnError, error) {
	switch s {
	case "allow":
		return Allow, nil
	case "deny":
		return Deny, nil
	}
	return 0, fmt.Errorf("unknown on_redis_error %q (want allow or deny)", s)
}

// RedisOptions configure a [Redis] limiter.
type RedisOptions struct {
	// Prefix starts every Redis key of this limiter ("sluice:rl:<name>:").
	Prefix string
	// Timeout bounds one decision's wait for Redis (also cut by the request's deadline).
	Timeout time.Duration
	// OnError is the policy when Redis fails or does not answer within Timeout.
	OnError OnError
	// Backoff: after a failure, decisions skip Redis and apply OnError for this long, so a
	// dead Redis costs requests no wait; the first decision after it tries Redis again.
	// 0 tries Redis on every request.
	Backoff time.Duration
	// Logger receives failure logs, at most one line per LogEvery (with the count of
	// failures it stood for).
	Logger   *slog.Logger
	LogEvery time.Duration
}

// Redis is a rate limiter of one [Rule] whose counts live in Redis, shared by every
// gateway that uses the same Redis, key prefix and rule.
type Redis struct {
	rule   Rule
	client redis.Scripter
	opt    RedisOptions
	args   [4]any // the script's ARGV after the algorithm: fixed per rule

	downUntil atomic.Int64 // unix ns; decisions before it skip Redis
	log       logThrottle
	stats     stats
}

// NewRedis returns a Redis limiter. client is shared: the caller closes it.
func NewRedis(rule Rule, client redis.Scripter, opt RedisOptions) *Redis {
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.LogEvery <= 0 {
		opt.LogEvery = 10 * time.Second
	}
	r := &Redis{rule: rule, client: client, opt: opt}
	windowUS := rule.Window.Microseconds()
	switch rule.Algorithm {
	case GCRA:
		t := windowUS / rule.Limit
		r.args = [4]any{"gcra", rule.Limit, t, rule.Burst * t}
	case FixedWindow:
		r.args = [4]any{"fixed", rule.Limit, windowUS, 0}
	default:
		r.args = [4]any{"sliding", rule.Limit, windowUS, 0}
	}
	r.log = logThrottle{every: int64(opt.LogEvery)}
	return r
}

// Rule returns the limiter's rule.
func (r *Redis) Rule() Rule { return r.rule }

// Allow decides one request of key. The wait for Redis is bounded by Options.Timeout and
// by ctx's deadline; on failure the policy decides (Decision.Degraded) and err says why.
func (r *Redis) Allow(ctx context.Context, key []byte) (d Decision, err error) {
	now := time.Now().UnixNano()
	if until := r.downUntil.Load(); until != 0 && now < until {
		d = r.degraded()
		r.stats.count(d)
		return d, ErrStoreDown
	}
	d, err = r.call(ctx, key)
	if err != nil {
		r.stats.storeErrors.add(1)
		if r.opt.Backoff > 0 {
			r.downUntil.Store(time.Now().Add(r.opt.Backoff).UnixNano())
		}
		r.log.failure(r.opt.Logger, r.opt.Prefix, err)
		d = r.degraded()
	} else if r.log.failing.Load() {
		r.downUntil.Store(0)
		r.log.recovered(r.opt.Logger, r.opt.Prefix)
	}
	r.stats.count(d)
	return d, err
}

// ErrStoreDown: Redis failed recently and is not tried until the backoff ends.
var ErrStoreDown = errors.New("redis marked down after a failure; not tried until the backoff ends")

func (r *Redis) degraded() Decision {
	d := Decision{Degraded: true, Limit: r.rule.Quota()}
	if r.opt.OnError == Allow {
		r.stats.failOpen.add(1)
		d.Allowed = true
	} else {
		r.stats.failClosed.add(1)
		d.RetryAfter = max(r.opt.Backoff, time.Second)
	}
	return d
}

func (r *Redis) call(ctx context.Context, key []byte) (Decision, error) {
	if r.opt.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, r.opt.Timeout)
		defer cancel()
	}
	res, err := script.Run(ctx, r.client, []string{r.opt.Prefix + string(key)}, r.args[:]...).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("redis rate limit script: %w", err)
	}
	if len(res) != 4 {
		return Decision{}, fmt.Errorf("redis rate limit script: %d results, want 4", len(res))
	}
	return Decision{Allowed: res[0] == 1, Limit: r.rule.Quota(), Remaining: res[1],
		Reset: time.Duration(res[2]) * time.Microsecond, RetryAfter: time.Duration(res[3]) * time.Microsecond}, nil
}

// Stats returns the limiter's counters.
func (r *Redis) Stats() Stats { return r.stats.snapshot() }

// logThrottle logs Redis failures at most once per interval, saying how many it stands for.
type logThrottle struct {
	every      int64
	last       atomic.Int64
	suppressed atomic.Int64
	failing    atomic.Bool
}

func (l *logThrottle) failure(log *slog.Logger, prefix string, err error) {
	l.failing.Store(true)
	now := time.Now().UnixNano()
	last := l.last.Load()
	if now-last < l.every || !l.last.CompareAndSwap(last, now) {
		l.suppressed.Add(1)
		return
	}
	log.Warn("redis rate limit failed; the on_redis_error policy decides",
		"prefix", prefix, "error", err, "failures_not_logged", l.suppressed.Swap(0))
}

func (l *logThrottle) recovered(log *slog.Logger, prefix string) {
	if l.failing.CompareAndSwap(true, false) {
		log.Info("redis rate limit recovered", "prefix", prefix, "failures_not_logged", l.suppressed.Swap(0))
	}
}

// FormatSeconds appends d rounded up to whole seconds (the unit of RateLimit and
// Retry-After fields) to b.
func FormatSeconds(b []byte, d time.Duration) []byte {
	s := int64((d + time.Second - 1) / time.Second)
	return strconv.AppendInt(b, max(s, 0), 10)
}
