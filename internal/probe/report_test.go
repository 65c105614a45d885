package probe

import (
	"strings"
	"testing"
	"time"

	"sluice/internal/config"
)

func TestRecommend(t *testing.T) {
	ms := func(n int) Duration { return Duration(time.Duration(n) * time.Millisecond) }
	idle := func(timeout Duration) *IdleResult {
		return &IdleResult{Observed: true, Timeout: timeout, CheckAge: timeout * 9 / 10, CheckOK: true}
	}
	cases := []struct {
		name     string
		r        Result
		fraction float64
		yaml     string
		note     string
	}{
		{name: "no keep-alive", r: Result{NoKeepAlive: "the first response says Connection: close"},
			fraction: 0.85, yaml: "keepalive:\n  enabled: false\n", note: "Connection: close"},
		{name: "2s measured a little early", r: Result{KeepsAlive: true, Idle: idle(ms(1998)), Limit: &LimitResult{Tried: 200}},
			fraction: 0.85, yaml: "keepalive:\n  idle_timeout: 1.7s\n"},
		{name: "1s measured a little early", r: Result{KeepsAlive: true, Idle: idle(ms(997))},
			fraction: 0.85, yaml: "keepalive:\n  idle_timeout: 850ms\n"},
		{name: "node 5s plus buffer", r: Result{KeepsAlive: true, Idle: idle(ms(6003))},
			fraction: 0.85, yaml: "keepalive:\n  idle_timeout: 5.1s\n"},
		{name: "600s", r: Result{KeepsAlive: true, Idle: idle(ms(600_020))},
			fraction: 0.9, yaml: "keepalive:\n  idle_timeout: 540s\n"},
		{name: "tiny", r: Result{KeepsAlive: true, Idle: idle(ms(37))},
			fraction: 0.85, yaml: "keepalive:\n  idle_timeout: 31ms\n"},
		{name: "nginx limit 50", r: Result{KeepsAlive: true, Idle: idle(ms(2001)), Limit: &LimitResult{Limit: 50, Signalled: true, Tried: 200}},
			fraction: 0.85, yaml: "keepalive:\n  idle_timeout: 1.7s\n  max_requests: 49\n"},
		{name: "failed check", r: Result{KeepsAlive: true, Idle: &IdleResult{Observed: true, Timeout: ms(900), CheckAge: ms(900), CheckOK: false}},
			fraction: 0.85, yaml: "keepalive:\n  idle_timeout: 760ms\n", note: "FAILED"},
		{name: "none within 3s", r: Result{KeepsAlive: true, Idle: &IdleResult{MaxWait: ms(3000)}},
			fraction: 0.85, yaml: "keepalive:\n  idle_timeout: 2.5s\n", note: "lower bound"},
		{name: "none within 120s", r: Result{KeepsAlive: true, Idle: &IdleResult{MaxWait: ms(120_000)}},
			fraction: 0.85, yaml: "keepalive:\n  idle_timeout: 60s\n"},
		{name: "lying Keep-Alive header", r: Result{KeepsAlive: true, AdvertisedTimeout: ms(5000), Idle: idle(ms(2000))},
			fraction: 0.85, yaml: "keepalive:\n  idle_timeout: 1.7s\n", note: "cannot be trusted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := Recommend(&tc.r, tc.fraction)
			if got := rec.YAML(); got != tc.yaml {
				t.Errorf("YAML:\n%s\nwant:\n%s", got, tc.yaml)
			}
			var b strings.Builder
			WriteText(&b, &tc.r, rec, tc.fraction)
			if !strings.Contains(b.String(), tc.note) {
				t.Errorf("report lacks %q:\n%s", tc.note, b.String())
			}
			// The recommended block must load as part of a real config.
			src := "listeners:\n  - address: 127.0.0.1:0\nupstreams:\n  - id: app\n    targets:\n      - address: 127.0.0.1:9\n" +
				indent(rec.YAML(), "    ") + "routes:\n  - id: all\n    upstream: app\n"
			if _, err := config.Parse("rec.yaml", []byte(src)); err != nil {
				t.Errorf("recommended settings do not load: %v\n%s", err, src)
			}
		})
	}
}

func indent(s, prefix string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		b.WriteString(prefix + line)
	}
	return b.String()
}

func TestRoundDown(t *testing.T) {
	cases := []struct{ in, want time.Duration }{
		{in: 512_300 * time.Millisecond, want: 512 * time.Second},
		{in: 1_699_900 * time.Microsecond, want: 1600 * time.Millisecond},
		{in: 849_600 * time.Microsecond, want: 840 * time.Millisecond},
		{in: 31_500 * time.Microsecond, want: 31 * time.Millisecond},
		{in: 0, want: 0},
	}
	for _, tc := range cases {
		if got := RoundDown(tc.in); got != tc.want {
			t.Errorf("RoundDown(%s) = %s, want %s", tc.in, got, tc.want)
		}
	}
}
