package config

import (
	"strings"
	"testing"
	"time"
)

// discoveryYAML is a valid config whose upstream has the given targets and extra fields.
func discoveryYAML(targets, extra string) string {
	return `listeners: [{address: "127.0.0.1:8080"}]
upstreams:
  - id: app
    targets:
` + targets + extra + `
routes: [{id: all, upstream: app}]
`
}

func TestDiscoveryDefaults(t *testing.T) {
	c, err := Parse("t.yaml", []byte(discoveryYAML(`      - address: api.internal:8080
      - srv: _http._tcp.api.internal
`, "")))
	if err != nil {
		t.Fatal(err)
	}
	u := c.Upstreams[0]
	d := u.Discovery
	if d.Resolver != "" || d.MinTTL.D() != time.Second || d.MaxTTL.D() != 300*time.Second || d.Timeout.D() != 2*time.Second {
		t.Errorf("discovery defaults: resolver %q min %v max %v timeout %v", d.Resolver, d.MinTTL.D(), d.MaxTTL.D(), d.Timeout.D())
	}
	if !u.Targets[0].IsName() || !u.Targets[1].IsName() || u.Targets[1].Weight != 1 {
		t.Errorf("targets: %+v", u.Targets)
	}
}

func TestTargetIsName(t *testing.T) {
	tests := []struct {
		name string
		t    Target
		want bool
	}{
		{"ipv4", Target{Address: "10.0.0.1:80"}, false},
		{"ipv6", Target{Address: "[2001:db8::1]:80"}, false},
		{"host name", Target{Address: "api.internal:80"}, true},
		{"localhost", Target{Address: "localhost:80"}, true},
		{"srv", Target{SRV: "_http._tcp.api.internal"}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.t.IsName(); got != tc.want {
				t.Errorf("IsName(%+v) = %v, want %v", tc.t, got, tc.want)
			}
		})
	}
}

func TestResolverAddr(t *testing.T) {
	tests := []struct{ in, want string }{
		{"", ""},
		{"10.0.0.2", "10.0.0.2:53"},
		{"127.0.0.1:5353", "127.0.0.1:5353"},
		{"2001:db8::53", "[2001:db8::53]:53"},
		{"[2001:db8::53]:5353", "[2001:db8::53]:5353"},
		{"dns.internal:53", ""},
	}
	for _, tc := range tests {
		if got := (Discovery{Resolver: tc.in}).ResolverAddr(); got != tc.want {
			t.Errorf("ResolverAddr(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestDiscoveryValidation(t *testing.T) {
	tests := []struct {
		name    string
		targets string
		extra   string
		want    []string // substrings, one per expected problem; none: valid
	}{
		{name: "names and ips", targets: "      - address: api.internal:8080\n      - address: 10.0.0.1:8080\n      - srv: _http._tcp.api.internal\n        weight: 2\n",
			extra: "    discovery: {resolver: \"127.0.0.1:5353\", min_ttl: 500ms, max_ttl: 60s, timeout: 1s}"},
		{name: "resolver without port", targets: "      - address: api.internal:8080\n", extra: "    discovery: {resolver: 10.0.0.2}"},
		{name: "address and srv", targets: "      - address: api.internal:8080\n        srv: _http._tcp.api.internal\n",
			want: []string{"t.yaml:6: upstreams[0].targets[0].srv: set either address or srv, not both"}},
		{name: "neither", targets: "      - weight: 2\n",
			want: []string{"upstreams[0].targets[0].address: required"}},
		{name: "bad srv", targets: "      - srv: \"_http._tcp.api.internal:80\"\n",
			want: []string{"t.yaml:5: upstreams[0].targets[0].srv: invalid SRV name"}},
		{name: "duplicate srv", targets: "      - srv: _a._tcp.x\n      - srv: _a._tcp.x\n",
			want: []string{"t.yaml:6: upstreams[0].targets[1].srv: duplicate srv"}},
		{name: "bad resolver", targets: "      - address: api.internal:8080\n", extra: "    discovery: {resolver: dns.internal}",
			want: []string{"t.yaml:6: upstreams[0].discovery.resolver: invalid resolver \"dns.internal\""}},
		{name: "zero durations", targets: "      - address: api.internal:8080\n",
			extra: "    discovery:\n      min_ttl: 0s\n      timeout: 0s",
			want:  []string{"t.yaml:7: upstreams[0].discovery.min_ttl: must be positive", "t.yaml:8: upstreams[0].discovery.timeout: must be positive"}},
		{name: "max below min", targets: "      - address: api.internal:8080\n", extra: "    discovery: {min_ttl: 10s, max_ttl: 5s}",
			want: []string{"upstreams[0].discovery.max_ttl: must be at least min_ttl (10s), got 5s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("t.yaml", []byte(discoveryYAML(tc.targets, tc.extra)))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, want %q", tc.want)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error lacks %q:\n%s", w, msg)
				}
			}
			if n := strings.Count(msg, "\n") + 1; n != len(tc.want) {
				t.Errorf("%d problems, want %d:\n%s", n, len(tc.want), msg)
			}
		})
	}
}
