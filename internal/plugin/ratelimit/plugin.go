// Package ratelimit is the rate-limit plugin: requests per window (sliding or fixed) or a
// token bucket (GCRA) per key, counted in the gateway's memory or in Redis shared by every
// gateway. The counting is internal/ratelimit's; this package decodes the config, builds
// the key of each request, and answers 429 with the rate limit fields and Retry-After.
package ratelimit

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"sluice/internal/plugin"
	rl "sluice/internal/ratelimit"
	"sluice/internal/reason"
)

func init() {
	plugin.Register(plugin.Kind{Name: "rate-limit", Stage: plugin.StageLimit, New: New})
}

// Plugin is one rate-limit instance: one limit over the routes of the place it is written.
type Plugin struct {
	name    string
	key     rl.Key
	local   *rl.Local
	redis   *rl.Redis
	release func() // gives the shared Redis client or local limiter back
	headers headerStyle
	quota   string // RateLimit-Limit's value, or RateLimit-Policy's for ietf

	errLimited     *reason.Error
	errUnavailable *reason.Error
}

type headerStyle uint8

const (
	headersDraft headerStyle = iota
	headersIETF
	headersNone
)

// clients shares one Redis client per address, credentials and db across every limit of
// every config generation in the process; locals keeps unchanged local limits (and their
// counts) across reloads.
var (
	clients rl.Clients
	locals  rl.Shared
)

var (
	_ plugin.RequestFilter = (*Plugin)(nil)
	_ plugin.Closer        = (*Plugin)(nil)
)

// New builds an instance from its config.
func New(b *plugin.Build) (any, error) {
	cfg := defaults()
	if err := b.Decode(&cfg); err != nil {
		return nil, err
	}
	p := &Plugin{name: cfg.Name}
	if p.name == "" {
		p.name = DefaultName(b)
	}
	rule, onErr, errs := check(b, &cfg)
	key, err := ParseKey(b, cfg.Key)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.key = key
	p.headers = map[string]headerStyle{"draft": headersDraft, "ietf": headersIETF, "none": headersNone}[cfg.Headers]
	p.errLimited = reason.New(cfg.Status, reason.RateLimited, "", nil)
	p.errUnavailable = reason.New(503, reason.RateLimitUnavailable, "", nil)
	p.quota = strconv.FormatInt(rule.Quota(), 10)
	if p.headers == headersIETF {
		p.quota = fmt.Sprintf("%q;q=%d;w=%d", p.name, rule.Quota(), ietfWindow(rule))
	}
	if cfg.Policy == "local" {
		p.local, p.release = locals.Local(p.name, rule, cfg.MaxKeys)
		return p, nil
	}
	r := cfg.Redis
	redisDefaults(r)
	client, release := clients.Get(rl.ClientOptions{Addr: r.Address, Username: r.Username, Password: r.Password,
		DB: r.DB, PoolSize: r.PoolSize, DialTimeout: r.Timeout.D()})
	p.release = release
	p.redis = rl.NewRedis(rule, client, rl.RedisOptions{Prefix: r.Prefix + p.name + ":", Timeout: r.Timeout.D(),
		OnError: onErr, Backoff: r.Backoff.D(), Logger: b.Log().With("limit", p.name)})
	return p, nil
}

// check validates cfg (all but the key) and returns its rule and Redis failure policy, or
// every problem, each naming its field.
func check(b *plugin.Build, cfg *Config) (rl.Rule, rl.OnError, []error) {
	var errs []error
	bad := func(field, format string, args ...any) { errs = append(errs, b.Errorf(field, format, args...)) }
	alg, err := rl.ParseAlgorithm(cfg.Algorithm)
	if err != nil {
		bad("algorithm", "%v", err)
	}
	rule := rl.Rule{Algorithm: alg, Limit: cfg.Limit, Window: cfg.Window.D(), Burst: cfg.Burst}
	if cfg.Limit <= 0 {
		bad("limit", "must be at least 1 request per window, got %d", cfg.Limit)
	}
	if rule.Window < time.Millisecond {
		bad("window", "must be at least 1ms, got %s", rule.Window)
	}
	if cfg.Burst < 0 {
		bad("burst", "must not be negative, got %d", cfg.Burst)
	} else if cfg.Burst > 0 && alg != rl.GCRA {
		bad("burst", "applies to algorithm gcra only, not %s", alg)
	}
	if len(errs) == 0 {
		if err := rule.Validate(); err != nil {
			bad("limit", "%v", err)
		}
	}
	if strings.ContainsAny(cfg.Name, "\"\\ \t") {
		bad("name", "%q: must not contain quotes, backslashes or spaces", cfg.Name)
	}
	if cfg.Headers != "draft" && cfg.Headers != "ietf" && cfg.Headers != "none" {
		bad("headers", "unknown value %q (want draft, ietf or none)", cfg.Headers)
	}
	if cfg.Status < 400 || cfg.Status > 599 {
		bad("status", "must be a 4xx or 5xx status, got %d", cfg.Status)
	}
	if cfg.MaxKeys < 0 {
		bad("max_keys", "must not be negative, got %d", cfg.MaxKeys)
	}
	onErr, err := rl.ParseOnError(cfg.OnRedisError)
	if err != nil {
		bad("on_redis_error", "%v", err)
	}
	switch cfg.Policy {
	case "local":
		if cfg.Redis != nil {
			bad("redis", "is only used with policy redis (policy is local)")
		}
	case "redis":
		if cfg.Redis == nil || cfg.Redis.Address == "" {
			bad("redis.address", "is required with policy redis")
		} else if _, _, err := net.SplitHostPort(cfg.Redis.Address); err != nil {
			bad("redis.address", "%v", err)
		}
		if cfg.Name == "" {
			bad("name", "is required with policy redis: it names the limit's keys in Redis, which every gateway sharing the limit must agree on")
		}
	default:
		bad("policy", "unknown policy %q (want local or redis)", cfg.Policy)
	}
	return rule, onErr, errs
}

// Request decides the request against the limit.
func (p *Plugin) Request(r *plugin.Request) error {
	var buf [256]byte
	key := p.key.Append(buf[:0], KeySource(r))
	var d rl.Decision
	if p.redis != nil {
		d, _ = p.redis.Allow(r.Context(), key) // failures are counted and logged by the limiter
	} else {
		d = p.local.Allow(key, time.Now())
	}
	if !d.Degraded {
		p.addHeaders(r, d)
	}
	if d.Allowed {
		return nil
	}
	if d.Degraded {
		return p.errUnavailable // the error path adds Retry-After: 1 to every 503
	}
	var num [20]byte
	r.AddResponseField("Retry-After", view(rl.FormatSeconds(num[:0], d.RetryAfter)))
	return p.errLimited
}

// addHeaders adds the rate limit fields the config chose.
func (p *Plugin) addHeaders(r *plugin.Request, d rl.Decision) {
	var num [64]byte
	switch p.headers {
	case headersDraft:
		r.AddResponseField("RateLimit-Limit", p.quota)
		r.AddResponseField("RateLimit-Remaining", view(strconv.AppendInt(num[:0], d.Remaining, 10)))
		r.AddResponseField("RateLimit-Reset", view(rl.FormatSeconds(num[:0], d.Reset)))
	case headersIETF:
		r.AddResponseField("RateLimit-Policy", p.quota)
		b := strconv.AppendQuote(num[:0], p.name)
		b = append(b, ";r="...)
		b = strconv.AppendInt(b, d.Remaining, 10)
		b = append(b, ";t="...)
		b = rl.FormatSeconds(b, d.Reset)
		r.AddResponseField("RateLimit", view(b))
	}
}

// Close gives the shared Redis client (the last user closes it) or local limiter back.
func (p *Plugin) Close() error {
	if p.release != nil {
		p.release()
	}
	return nil
}

// Name is the limit's name (metrics label).
func (p *Plugin) Name() string { return p.name }

// Stats are the limit's counters (metrics read them at scrape time).
func (p *Plugin) Stats() rl.Stats {
	if p.redis != nil {
		return p.redis.Stats()
	}
	return p.local.Stats()
}

// ParseKey parses a limit's key list (nil: [client_ip]), naming the bad item (shared with
// limit-conn).
func ParseKey(b *plugin.Build, items *[]string) (rl.Key, error) {
	list := []string{"client_ip"}
	if items != nil {
		list = *items
	}
	k, err := rl.ParseKey(list)
	var ke *rl.KeyError
	if errors.As(err, &ke) {
		return nil, b.Errorf(fmt.Sprintf("key[%d]", ke.Index), "%s", ke.Msg)
	}
	return k, err
}

// KeySource returns r as the source of a limit's key parts (shared with limit-conn). The
// value is one pointer: passing it as an interface does not allocate.
func KeySource(r *plugin.Request) rl.KeySource { return source{r} }

type source struct{ r *plugin.Request }

func (s source) Consumer() string {
	if c := s.r.Consumer(); c != nil {
		return c.Name
	}
	return ""
}

func (s source) ClientIP() netip.Addr { return s.r.ClientIP() }

func (s source) Header(name string) []byte {
	v, _ := s.r.Header().Get(name)
	return v
}

func (s source) Route() string { return s.r.RouteID() }

// view returns b as a string without copying: AddResponseField copies it.
func view(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// ietfWindow is the policy's window in whole seconds (w= takes seconds; at least 1).
func ietfWindow(r rl.Rule) int64 {
	w := r.Window
	if r.Algorithm == rl.GCRA {
		w = time.Duration(r.Burst+1) * r.Window / time.Duration(r.Limit)
	}
	return max(int64((w+time.Second-1)/time.Second), 1)
}

// DefaultName names a limit by its place and its position in the route's chain (shared
// with limit-conn).
func DefaultName(b *plugin.Build) string {
	pos := "#" + strconv.Itoa(int(b.Slot()))
	switch {
	case b.RouteID != "":
		return "route:" + b.RouteID + pos
	case b.UpstreamID != "":
		return "upstream:" + b.UpstreamID + pos
	}
	return "global" + pos
}
