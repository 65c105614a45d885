package discovery

import (
	"context"
	"log/slog"
	"slices"
	"time"

	"sluice/internal/proclog"
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

	// failing is the standing "does not resolve" warning: logged when it starts, then
	// with backoff (not at every retry, which is every min_ttl), and once when it clears.
	failing proclog.Standing
}

// Resolve resolves the name once (for the first set, before the generation serves) without
// applying the result. It returns the endpoints and when to resolve next: the clamped TTL,
// or MinTTL after a failure, which it logs (the endpoints are nil then).
func (w *Watcher) Resolve(ctx context.Context) ([]upstream.Endpoint, time.Duration) {
	eps, ttl, err := w.Resolver.Resolve(ctx, w.Name)
	if err != nil {
		next := w.Resolver.Next(0)
		w.failed("name does not resolve; it has no targets until it does", -1, next, err)
		return nil, next
	}
	w.resolved(len(eps))
	return eps, w.Resolver.Next(ttl)
}

// failed logs a failed resolution as a standing warning: the first at once, repeats with
// backoff, each saying how many failures it stands for.
func (w *Watcher) failed(msg string, addresses int, retry time.Duration, err error) {
	now := time.Now()
	log, unlogged := w.failing.Fail(now, retry)
	if !log {
		return
	}
	args := []any{"component", "discovery", "upstream", w.Upstream, "name", w.Name.String(),
		"retry_in", retry, "error", err}
	if addresses >= 0 {
		args = append(args, "addresses", addresses)
	}
	if unlogged > 0 {
		args = append(args, "failing_since", w.failing.Since().UTC().Format(time.RFC3339),
			"failures_not_logged", unlogged, "next_warning_in", w.failing.NextLog(now).Round(time.Second))
	}
	w.log().Warn(msg, args...)
}

// resolved ends a standing failure, logging the recovery once.
func (w *Watcher) resolved(addresses int) {
	if since := w.failing.Since(); w.failing.Clear() {
		w.log().Info("name resolves again", "component", "discovery", "upstream", w.Upstream,
			"name", w.Name.String(), "addresses", addresses, "failed_for", time.Since(since).Round(time.Millisecond))
	}
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
			w.failed("re-resolution failed; keeping the previous addresses", len(last), next, err)
		case !slices.Equal(eps, last):
			w.resolved(len(eps))
			if w.Publish(eps, next) {
				last = eps
			}
		default:
			w.resolved(len(eps))
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
