package config

import (
	"strings"
	"testing"
	"time"
)

// upstreamYAML is a valid config with extra upstream fields inserted (indented 4 spaces).
func upstreamYAML(extra string) string {
	return `listeners: [{address: "127.0.0.1:8080"}]
upstreams:
  - id: app
    targets: [{address: "10.0.0.5:8080"}, {address: "10.0.0.6:8080", weight: 3}]
` + extra + `
routes: [{id: all, upstream: app}]
`
}

func TestBalanceDefaults(t *testing.T) {
	c, err := Parse("t.yaml", []byte(upstreamYAML(`    health_check:
      active: {}
      passive: {}`)))
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstreams[0]
	if u.Balancer.Policy != "round_robin" || *u.HealthCheck.PanicThreshold != 0.5 {
		t.Errorf("balancer defaults: %+v, panic %v", u.Balancer, *u.HealthCheck.PanicThreshold)
	}
	a := u.HealthCheck.Active
	if a.Type != "http" || a.Path != "/" || a.Interval.D() != 10*time.Second || a.Timeout.D() != 2*time.Second ||
		a.HealthyThreshold != 2 || a.UnhealthyThreshold != 3 || *a.Jitter != 0.1 || a.ExpectedStatuses != nil {
		t.Errorf("active defaults: %+v", a)
	}
	p := u.HealthCheck.Passive
	if p.ConsecutiveFailures != 5 || !*p.Count5xx || p.BaseEjection.D() != 30*time.Second || p.MaxEjection.D() != 300*time.Second {
		t.Errorf("passive defaults: %+v", p)
	}
	c, err = Parse("t.yaml", []byte(upstreamYAML(`    health_check: {active: {type: tcp}}`)))
	if err != nil {
		t.Fatal(err)
	}
	if a := c.Upstreams[0].HealthCheck.Active; a.Path != "" {
		t.Errorf("tcp check got an HTTP path default %q", a.Path)
	}
}

func TestBalanceValidation(t *testing.T) {
	tests := []struct {
		name  string
		extra string
		want  []string // substrings, one per expected problem; none: valid
	}{
		{"all policies", `    balancer: {policy: least_request, slow_start: 30s}`, nil},
		{"ewma", `    balancer: {policy: ewma}`, nil},
		{"hash header", `    balancer: {policy: hash, hash_on: header, hash_key: X-User}`, nil},
		{"hash uri", `    balancer: {policy: hash, hash_on: uri}`, nil},
		{"full health", `    health_check:
      panic_threshold: 0
      active: {type: http, path: /healthz, host: app.internal, expected_statuses: [200, 204], body_contains: ok,
               interval: 5s, timeout: 1s, healthy_threshold: 1, unhealthy_threshold: 2, jitter: 0}
      passive: {consecutive_failures: 3, count_5xx: false, base_ejection: 10s, max_ejection: 1m}
    limits: {max_concurrent_requests: 100, max_concurrent_retries: 10}`, nil},
		{"unknown policy", `    balancer: {policy: random}`, []string{`balancer.policy: unknown policy "random"`}},
		{"hash without hash_on", `    balancer: {policy: hash}`, []string{"balancer.hash_on: required with policy: hash"}},
		{"hash unknown hash_on", `    balancer: {policy: hash, hash_on: body}`, []string{`unknown hash_on "body"`}},
		{"hash header without key", `    balancer: {policy: hash, hash_on: cookie}`, []string{"balancer.hash_key: required with hash_on: cookie"}},
		{"hash client_ip with key", `    balancer: {policy: hash, hash_on: client_ip, hash_key: x}`, []string{"balancer.hash_key: not used with hash_on: client_ip"}},
		{"hash_on without hash", `    balancer: {hash_on: uri, hash_key: x}`, []string{"balancer.hash_on: only valid with policy: hash", "balancer.hash_key: only valid with policy: hash"}},
		{"panic threshold", `    health_check: {panic_threshold: 1.5}`, []string{"health_check.panic_threshold: must be between 0 and 1"}},
		{"active problems", `    health_check:
      active: {type: http, path: "no-slash", host: "a b", expected_statuses: [99, 200, 600], jitter: 1}`, []string{
			"active.path: must start with '/'", "active.host: must contain no spaces",
			"status 99 (item 0)", "status 600 (item 2)", "active.jitter: must be at least 0 and below 1"}},
		{"negative thresholds", `    health_check:
      active: {healthy_threshold: -1, unhealthy_threshold: -2}
      passive: {consecutive_failures: -3}`, []string{"active.healthy_threshold: must be positive",
			"active.unhealthy_threshold: must be positive", "passive.consecutive_failures: must be positive"}},
		{"tcp with http fields", `    health_check: {active: {type: tcp, path: /x, body_contains: ok}}`, []string{
			"active.body_contains: only valid with type: http", "active.path: only valid with type: http"}},
		{"unknown type", `    health_check: {active: {type: udp}}`, []string{`unknown check type "udp"`}},
		{"grpc check on an HTTP/1.1 upstream", `    health_check: {active: {type: grpc}}`, []string{`grpc checks need protocol: h2, h2c or auto`}},
		{"ejection order", `    health_check: {passive: {base_ejection: 1m, max_ejection: 10s}}`, []string{"passive.max_ejection: must not be below base_ejection"}},
		{"negative limits", `    limits: {max_concurrent_requests: -1, max_concurrent_retries: -1}`, []string{
			"limits.max_concurrent_requests: must not be negative", "limits.max_concurrent_retries: must not be negative"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(upstreamYAML(tc.extra)))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("want valid, got %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("want errors %q, got none", tc.want)
			}
			got := splitErrors(err)
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing error containing %q", w)
				}
			}
			if len(got) != len(tc.want) {
				t.Errorf("got %d errors, want %d:\n%v", len(got), len(tc.want), err)
			}
			for _, e := range got {
				if !strings.HasPrefix(e.Error(), "t.yaml:") {
					t.Errorf("error without file:line: %q", e)
				}
			}
		})
	}
}
