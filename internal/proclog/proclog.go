// Package proclog builds the process log: JSON lines through log/slog, where each key
// appears once per line and durations read as strings ("1.5s", not 1500000000).
//
// Packages add their own "component" (and other keys) to the logger they are given, and a
// package handed a logger that already carries one used to log both: slog's JSON handler
// writes every attribute it is given, so a line could say "component":"gateway" and
// "component":"health". Handler keeps a logger's attributes by key: a later With of the same
// key replaces the earlier value, and a key given at the call replaces the logger's. Groups
// (WithGroup) are passed through; keys are deduplicated within each group level.
//
// Log lines are not on the request path (the access log is a separate stream), so the
// small cost of rebuilding a record per line is paid only where a line is written.
package proclog

import (
	"context"
	"io"
	"log/slog"
	"strings"
	"time"
)

// New returns a logger writing JSON lines to w at the level that level holds (set it to
// change the level of a running process).
func New(w io.Writer, level slog.Leveler) *slog.Logger {
	return slog.New(NewHandler(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: level, ReplaceAttr: durationString})))
}

// durationString renders durations as Go duration strings.
func durationString(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() == slog.KindDuration {
		return slog.String(a.Key, a.Value.Duration().String())
	}
	return a
}

// ParseLevel maps a config level (debug, info, warn, error; case-insensitive) to slog's;
// anything else is info (config validation refuses other values).
func ParseLevel(s string) slog.Level {
	switch strings.ToLower(s) {
	case "debug":
		return slog.LevelDebug
	case "warn":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// Handler wraps a handler so that each key appears once per line (see the package doc).
type Handler struct {
	inner slog.Handler // holds the attributes of earlier groups, not attrs
	attrs []slog.Attr  // the logger's attributes at the current group level, keys unique
}

// NewHandler returns a Handler writing through inner.
func NewHandler(inner slog.Handler) *Handler { return &Handler{inner: inner} }

// Enabled implements slog.Handler.
func (h *Handler) Enabled(ctx context.Context, l slog.Level) bool { return h.inner.Enabled(ctx, l) }

// WithAttrs implements slog.Handler: attrs replace earlier attributes of the same key.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &Handler{inner: h.inner, attrs: merge(h.attrs, attrs)}
}

// WithGroup implements slog.Handler.
func (h *Handler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &Handler{inner: h.inner.WithAttrs(h.attrs).WithGroup(name)}
}

// Handle implements slog.Handler: the record's attributes replace the logger's of the same
// key, and the last of a key given twice at the call wins.
func (h *Handler) Handle(ctx context.Context, r slog.Record) error {
	rec := make([]slog.Attr, 0, r.NumAttrs())
	r.Attrs(func(a slog.Attr) bool { rec = append(rec, a); return true })
	out := slog.NewRecord(r.Time, r.Level, r.Message, r.PC)
	out.AddAttrs(merge(h.attrs, rec)...)
	return h.inner.Handle(ctx, out)
}

// merge returns base with each attribute of more replacing the one of the same key, or
// appended; a key repeated within more keeps its last value. base is not modified.
func merge(base, more []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, len(base), len(base)+len(more))
	copy(out, base)
	for _, a := range more {
		if a.Key == "" && a.Value.Kind() == slog.KindGroup { // an inlined group: its members
			out = merge(out, a.Value.Group())
			continue
		}
		replaced := false
		for i := range out {
			if out[i].Key == a.Key {
				out[i], replaced = a, true
				break
			}
		}
		if !replaced {
			out = append(out, a)
		}
	}
	return out
}

var _ slog.Handler = (*Handler)(nil)

// Standing is a warning about a condition that holds until it clears (a name that does not
// resolve, a backend that refuses): repeating it at every retry buries the rest of the log,
// and dropping the repeats hides that it still holds. Fail says when to log: at the first
// failure, then after 2x, 4x, 8x, ... the retry interval, at most Max apart, with the number of
// failures since the last line; Clear says whether the condition was standing, so the
// recovery can be logged once. The zero value backs off from 1s to 5 minutes. A Standing is
// used by one goroutine.
type Standing struct {
	// Max is the longest gap between two lines of a standing warning. Default 5 minutes.
	Max time.Duration

	failing  bool
	since    time.Time // first failure
	next     time.Time // the next failure at or after this is logged
	gap      time.Duration
	repeated int // failures not logged since the last line
}

// Fail records a failure at now, where retry is the time until the next attempt. It reports
// whether to log this one and how many failures since the previous line went unlogged.
func (s *Standing) Fail(now time.Time, retry time.Duration) (log bool, unlogged int) {
	maxGap := s.Max
	if maxGap <= 0 {
		maxGap = 5 * time.Minute
	}
	if !s.failing {
		s.failing, s.since, s.repeated = true, now, 0
		s.gap = min(2*max(retry, time.Second), maxGap)
		s.next = now.Add(s.gap)
		return true, 0
	}
	if now.Before(s.next) {
		s.repeated++
		return false, 0
	}
	unlogged = s.repeated
	s.repeated = 0
	s.gap = min(2*s.gap, maxGap)
	s.next = now.Add(s.gap)
	return true, unlogged
}

// Since returns when the standing condition began (zero when it is not standing).
func (s *Standing) Since() time.Time {
	if !s.failing {
		return time.Time{}
	}
	return s.since
}

// NextLog returns how long after now the next failure would be logged.
func (s *Standing) NextLog(now time.Time) time.Duration { return max(s.next.Sub(now), 0) }

// Clear records a success and reports whether a failure was standing until now.
func (s *Standing) Clear() bool {
	was := s.failing
	*s = Standing{Max: s.Max}
	return was
}
