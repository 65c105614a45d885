package discovery

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"sluice/internal/upstream"
)

// Watcher re-resolves one name for as long as its context lives, and applies each changed
// resolution.
type Watcher struct {
	Resolver *Resolver
	Name     Name
	// Upstream is the upstream's ID (for logs).
	Upstream string
	// Apply makes eps the name's addresses and reports which joined and left.
	Apply func(eps []upstream.Endpoint) (added, removed []string, err error)
	// Log receives changes at info and failures at warn (nil: discarded).
	Log *slog.Logger
}

// Resolve resolves the name once (for the first set, before the generation serves) without
// applying the result. It returns the endpoints and when to resolve next: the clamped TTL,
// or MinTTL after a failure, which it logs (the endpoints are nil then).
func (w *Watcher) Resolve(ctx context.Context) ([]upstream.Endpoint, time.Duration) {
	eps, ttl, err := w.Resolver.Resolve(ctx, w.Name)
	if err != nil {
		next := w.Resolver.Next(0)
		w.log().Warn("name does not resolve; it has no targets until it does",
			"component", "discovery", "upstream", w.Upstream, "name", w.Name.String(),
			"retry_in", next, "error", err)
		return nil, next
	}
	return eps, w.Resolver.Next(ttl)
}

// Publish applies eps (with ttl, the time until the next resolution, for the log) and logs
// the change. It reports whether eps were applied.
func (w *Watcher) Publish(eps []upstream.Endpoint, ttl time.Duration) bool {
	added, removed, err := w.Apply(eps)
	if err != nil {
		w.log().Error("cannot apply resolved addresses", "component", "discovery",
			"upstream", w.Upstream, "name", w.Name.String(), "error", err)
		return false
	}
	if len(added)+len(removed) > 0 {
		w.log().Info("targets changed", "component", "discovery", "upstream", w.Upstream,
			"name", w.Name.String(), "added", added, "removed", removed, "ttl", ttl,
			"targets", len(eps))
	}
	return true
}

// Run resolves the name every time the previous answer expires (its TTL, clamped to
// [MinTTL, MaxTTL]) until ctx is canceled. last are the addresses in force and wait the
// time until the first resolution. A failed or empty resolution keeps the addresses in
// force (DNS trouble never empties an upstream) and is retried after MinTTL.
func (w *Watcher) Run(ctx context.Context, last []upstream.Endpoint, wait time.Duration) {
	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		}
		eps, ttl, err := w.Resolver.Resolve(ctx, w.Name)
		if ctx.Err() != nil {
			return
		}
		next := w.Resolver.Next(ttl)
		switch {
		case err != nil:
			next = w.Resolver.Next(0)
			w.log().Warn("re-resolution failed; keeping the previous addresses",
				"component", "discovery", "upstream", w.Upstream, "name", w.Name.String(),
				"addresses", len(last), "retry_in", next, "error", err)
		case !slices.Equal(eps, last):
			if w.Publish(eps, next) {
				last = eps
			}
		}
		timer.Reset(next)
	}
}

func (w *Watcher) log() *slog.Logger {
	if w.Log == nil {
		return slog.New(slog.DiscardHandler)
	}
	return w.Log
}
