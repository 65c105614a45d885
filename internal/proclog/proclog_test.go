package proclog

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

func TestEachKeyOnce(t *testing.T) {
	tests := []struct {
		name string
		log  func(l *slog.Logger)
		want map[string]any
	}{
		{"With twice", func(l *slog.Logger) {
			l.With("component", "gateway").With("component", "server", "listener", "a").Info("m")
		}, map[string]any{"component": "server", "listener": "a"}},
		{"call replaces With", func(l *slog.Logger) {
			l.With("component", "gateway").Warn("m", "component", "health", "upstream", "u")
		}, map[string]any{"component": "health", "upstream": "u"}},
		{"repeated at the call", func(l *slog.Logger) {
			l.Info("m", "k", 1, "k", 2)
		}, map[string]any{"k": 2.0}},
		{"duration as a string", func(l *slog.Logger) {
			l.Info("m", "ttl", 300*time.Second, "retry_in", 1500*time.Millisecond)
		}, map[string]any{"ttl": "5m0s", "retry_in": "1.5s"}},
		{"groups pass through", func(l *slog.Logger) {
			l.With("component", "a").WithGroup("g").With("component", "b").Info("m", "component", "c")
		}, map[string]any{"component": "a", "g": map[string]any{"component": "c"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			tc.log(New(&buf, slog.LevelInfo))
			line := buf.Bytes()
			if rep := testutil.RepeatedKeys(t, string(line)); rep != nil {
				t.Errorf("keys %q more than once in %s", rep, line)
			}
			var got map[string]any
			if err := json.Unmarshal(line, &got); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.want {
				if g, _ := json.Marshal(got[k]); string(g) != mustJSON(v) {
					t.Errorf("%s = %s, want %s (line %s)", k, g, mustJSON(v), line)
				}
			}
		})
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

func TestLevelVar(t *testing.T) {
	var buf bytes.Buffer
	lv := new(slog.LevelVar)
	l := New(&buf, lv).With("component", "x")
	l.Info("one")
	lv.Set(ParseLevel("ERROR"))
	l.Info("two")
	l.Error("three")
	if got := buf.String(); !strings.Contains(got, "one") || strings.Contains(got, "two") || !strings.Contains(got, "three") {
		t.Errorf("log:\n%s\nwant one and three, not two", got)
	}
}

// TestStanding: a failure every second is logged at 0s, 2s, 6s, 14s, ... (each gap twice the
// last, at most Max), each repeat saying how many went unlogged; a success clears it.
func TestStanding(t *testing.T) {
	s := Standing{Max: 16 * time.Second}
	t0 := time.Unix(1000, 0)
	var logged []int
	var unloggedAt []int
	for sec := 0; sec <= 40; sec++ {
		if log, n := s.Fail(t0.Add(time.Duration(sec)*time.Second), time.Second); log {
			logged = append(logged, sec)
			unloggedAt = append(unloggedAt, n)
		}
	}
	want := []int{0, 2, 6, 14, 30}
	if !slices.Equal(logged, want) {
		t.Errorf("logged at %v s, want %v", logged, want)
	}
	if want := []int{0, 1, 3, 7, 15}; !slices.Equal(unloggedAt, want) {
		t.Errorf("unlogged counts %v, want %v", unloggedAt, want)
	}
	if !s.Since().Equal(t0) {
		t.Errorf("Since = %v, want %v", s.Since(), t0)
	}
	if !s.Clear() || s.Clear() {
		t.Error("Clear: want true once after failures, then false")
	}
	if log, _ := s.Fail(t0.Add(time.Hour), time.Second); !log {
		t.Error("a new failure after Clear is not logged at once")
	}
}
