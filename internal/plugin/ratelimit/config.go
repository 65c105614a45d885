package ratelimit

import (
	"time"

	"sluice/internal/config"
)

// Config is the rate-limit plugin's config (docs/plugins.md#rate-limiting).
type Config struct {
	// Name names the limit in metrics, logs and Redis keys. Two places with the same name
	// and settings share their counts (with policy redis, every gateway using that Redis
	// too). Default: the place it is written ("route:<id>", "upstream:<id>" or "global")
	// and its position in the route's chain, such as "route:api#1". Required with policy
	// redis.
	Name string `yaml:"name"`
	// Key lists what the limit counts by: "consumer" (anonymous requests by client IP),
	// "client_ip" (the real client IP), "route" (the matched route's id), "header:<Name>"
	// (a request header's value; absent counts as empty), combined in order. Default
	// [client_ip]; an empty list [] is one count for all requests.
	Key *[]string `yaml:"key"`
	// Algorithm: "sliding_window" (default; a two-window weighted counter), "fixed_window",
	// or "gcra" (a token bucket; also "token_bucket").
	Algorithm string `yaml:"algorithm"`
	// Limit is the number of requests per Window. Required, at least 1.
	Limit int64 `yaml:"limit"`
	// Window is the period Limit counts over (at least 1ms). Default 1s.
	Window config.Duration `yaml:"window"`
	// Burst (gcra only) is how many requests above the steady rate are admitted at once
	// after an idle time, as nginx's limit_req burst. Default 0: requests spaced exactly
	// Window/Limit apart.
	Burst int64 `yaml:"burst"`
	// Policy is where counts live: "local" (default; in this gateway's memory) or "redis"
	// (shared by every gateway using the same Redis; needs redis.address).
	Policy string `yaml:"policy"`
	// MaxKeys caps the keys a local limit holds (~100 bytes each plus the key). At the cap a
	// new key takes the place of an idle key, else of the least recently used of a few: that
	// key's count restarts. Default 100000.
	MaxKeys int `yaml:"max_keys"`
	// Headers says which rate limit fields responses carry: "draft" (default:
	// RateLimit-Limit, RateLimit-Remaining, RateLimit-Reset), "ietf" (RateLimit-Policy and
	// RateLimit, the IETF httpapi draft's structured fields) or "none". A 429 always carries
	// Retry-After.
	Headers string `yaml:"headers"`
	// Status is the status of a refused request. Default 429.
	Status int `yaml:"status"`
	// OnRedisError is what happens when Redis fails or does not answer in time: "allow"
	// (default: fail open, the request goes on unlimited) or "deny" (fail closed: 503
	// rate_limit_unavailable). Each such decision is counted and logged (at most one line
	// per 10s per limit).
	OnRedisError string `yaml:"on_redis_error"`
	// Redis is where counts live with policy redis.
	Redis *Redis `yaml:"redis"`
}

// Redis says how to reach Redis.
type Redis struct {
	// Address is host:port. Required with policy redis.
	Address string `yaml:"address"`
	// Username and Password authenticate (Redis 6 ACL; Password alone for requirepass).
	// Default none.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	// DB is the database number. Default 0.
	DB int `yaml:"db"`
	// Timeout bounds the wait for one decision (the request's context also ends it: a
	// client that leaves, a gateway that stops). 0 or omitted: 50ms.
	Timeout config.Duration `yaml:"timeout"`
	// Backoff: after a Redis failure, decisions apply on_redis_error without calling Redis
	// for this long (a dead Redis then costs requests no wait); the first request after it
	// tries Redis again. Default 1s; 0 tries Redis on every request.
	Backoff *config.Duration `yaml:"backoff"`
	// Prefix starts every key this gateway writes. Default "sluice:rl:".
	Prefix string `yaml:"prefix"`
	// PoolSize is the most connections to this Redis (shared by every limit using the same
	// address, credentials and db). Default 0: 10 per CPU.
	PoolSize int `yaml:"pool_size"`
}

// Defaults of the rate-limit plugin, in one place.
const (
	DefaultWindow       = time.Second
	DefaultRedisTimeout = 50 * time.Millisecond
	DefaultRedisBackoff = time.Second
	DefaultRedisPrefix  = "sluice:rl:"
	DefaultStatus       = 429
)

func defaults() Config {
	return Config{Algorithm: "sliding_window", Window: config.Duration(DefaultWindow), Policy: "local",
		Headers: "draft", Status: DefaultStatus, OnRedisError: "allow"}
}

func redisDefaults(r *Redis) {
	if r.Timeout == 0 {
		r.Timeout = config.Duration(DefaultRedisTimeout)
	}
	if r.Backoff == nil {
		b := config.Duration(DefaultRedisBackoff)
		r.Backoff = &b
	}
	if r.Prefix == "" {
		r.Prefix = DefaultRedisPrefix
	}
}
