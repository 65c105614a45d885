// Package limitconn is the limit-conn plugin: at most max requests in flight per key (the
// client IP, the consumer, a header, the route, or a combination), in the gateway's memory.
// A request takes its place in the request phase and gives it back in the log phase, which
// runs once for every request that reached the chain however it ended: a complete
// response, an upstream failure, a client that left, a later plugin's refusal.
package limitconn

import (
	"errors"
	"time"

	"sluice/internal/plugin"
	"sluice/internal/plugin/ratelimit"
	rl "sluice/internal/ratelimit"
	"sluice/internal/reason"
)

func init() {
	plugin.Register(plugin.Kind{Name: "limit-conn", Stage: plugin.StageLimit, New: New})
}

// Config is the limit-conn plugin's config (docs/plugins.md#rate-limiting).
type Config struct {
	// Name names the limit in metrics. Default: the place it is written and its position.
	Name string `yaml:"name"`
	// Key lists what the limit counts by, as the rate-limit plugin's key. Default
	// [client_ip]; [] is one count for all requests.
	Key *[]string `yaml:"key"`
	// Max is the number of requests of one key in flight at once. Required, at least 1.
	Max int64 `yaml:"max"`
	// MaxKeys caps the keys held. Keys with requests in flight are never forgotten; when a
	// new key finds no free place, it is refused (concurrency_limited). Default 100000.
	MaxKeys int `yaml:"max_keys"`
	// Status is the status of a refused request. Default 429.
	Status int `yaml:"status"`
}

// Plugin is one limit-conn instance.
type Plugin struct {
	name string
	slot plugin.Slot
	key  rl.Key
	c    *rl.Concurrency
	err  *reason.Error

	release func()
}

// shared keeps unchanged limits across config generations.
var shared rl.Shared

var (
	_ plugin.RequestFilter = (*Plugin)(nil)
	_ plugin.LogFilter     = (*Plugin)(nil)
	_ plugin.Closer        = (*Plugin)(nil)
)

// New builds an instance from its config.
func New(b *plugin.Build) (any, error) {
	cfg := Config{Status: 429}
	if err := b.Decode(&cfg); err != nil {
		return nil, err
	}
	var errs []error
	if cfg.Max < 1 {
		errs = append(errs, b.Errorf("max", "must be at least 1 request in flight, got %d", cfg.Max))
	}
	if cfg.MaxKeys < 0 {
		errs = append(errs, b.Errorf("max_keys", "must not be negative, got %d", cfg.MaxKeys))
	}
	if cfg.Status < 400 || cfg.Status > 599 {
		errs = append(errs, b.Errorf("status", "must be a 4xx or 5xx status, got %d", cfg.Status))
	}
	key, err := ratelimit.ParseKey(b, cfg.Key)
	if err != nil {
		errs = append(errs, err)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p := &Plugin{name: cfg.Name, slot: b.Slot(), key: key, err: reason.New(cfg.Status, reason.ConcurrencyLimited, "", nil)}
	if p.name == "" {
		p.name = ratelimit.DefaultName(b)
	}
	// An unchanged limit keeps its table across reloads: requests in flight from the old
	// generation still count, and release into the same table.
	p.c, p.release = shared.Concurrency(p.name, cfg.Max, cfg.MaxKeys)
	return p, nil
}

// Request takes a place for the request, or refuses it.
func (p *Plugin) Request(r *plugin.Request) error {
	var buf [256]byte
	lease, _, ok := p.c.Acquire(p.key.Append(buf[:0], ratelimit.KeySource(r)), time.Now())
	if !ok {
		return p.err
	}
	r.Slot(p.slot).N = lease.Token()
	return nil
}

// Log gives the request's place back, however the request ended.
func (p *Plugin) Log(r *plugin.Request, _ int) {
	s := r.Slot(p.slot)
	p.c.ReleaseToken(s.N)
	s.N = 0
}

// Close gives the shared table back when the config generation is retired.
func (p *Plugin) Close() error {
	p.release()
	return nil
}

// Name is the limit's name (metrics label).
func (p *Plugin) Name() string { return p.name }

// Stats are the limit's counters.
func (p *Plugin) Stats() rl.Stats { return p.c.Stats() }
