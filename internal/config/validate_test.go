package config

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestDefaultConfig(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatalf("Default: %v", err)
	}
	if c.File != "embedded:default.yaml" {
		t.Errorf("File = %q, want embedded:default.yaml", c.File)
	}
	if len(c.Listeners) != 1 || c.Listeners[0].Address != DemoListenAddress {
		t.Fatalf("listeners = %+v, want one on %s", c.Listeners, DemoListenAddress)
	}
	u := c.UpstreamByID("demo")
	if u == nil || len(u.Targets) != 1 || u.Targets[0].Address != DemoBackendAddress {
		t.Fatalf("upstream demo = %+v, want one target %s", u, DemoBackendAddress)
	}
	routes := map[string]*Route{}
	for _, r := range c.Routes {
		routes[r.ID] = r
	}
	catchAll, ok := routes["demo"]
	if !ok || catchAll.Upstream != "demo" || !isEmptyMatch(catchAll.Match) {
		t.Errorf("route demo = %+v, want a catch-all to upstream demo", catchAll)
	}
	api, ok := routes["demo-api"]
	if !ok || api.Upstream != "demo" || api.Match.PathPrefix != "/api/" || api.Rewrite.StripPrefix != "/api" {
		t.Errorf("route demo-api = %+v, want path_prefix /api/ and strip_prefix /api", api)
	}
}

func isEmptyMatch(m Match) bool {
	return len(m.Hosts) == 0 && m.Path == "" && m.PathPrefix == "" && m.PathRegex == "" &&
		len(m.Methods) == 0 && len(m.Headers) == 0 && len(m.Query) == 0
}

// validConfig returns a small valid, defaulted config for tests to break.
func validConfig() *Config {
	c := &Config{
		Listeners: []Listener{{Address: ":8080"}},
		Upstreams: []Upstream{{ID: "app", Targets: []Target{{Address: "10.0.0.1:80"}}}},
		Routes:    []*Route{{ID: "r", Upstream: "app"}},
	}
	applyDefaults(c)
	return c
}

func ptr[T any](v T) *T { return &v }

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(c *Config)
		want   string // "" means valid
	}{
		{"valid", func(*Config) {}, ""},
		{"listener timeout zero", func(c *Config) { c.Listeners[0].ReadTimeout = 0 }, "listeners[0].read_timeout: must be positive"},
		{"negative body limit", func(c *Config) { c.Listeners[0].MaxBodyBytes = -1 }, "listeners[0].max_body_bytes: must not be negative"},
		{"port 0 listeners may repeat", func(c *Config) {
			c.Listeners = []Listener{{Address: "127.0.0.1:0"}, {Address: "127.0.0.1:0"}}
			applyDefaults(c)
		}, ""},
		{"duplicate listener name", func(c *Config) {
			c.Listeners = append(c.Listeners, c.Listeners[0])
			c.Listeners[1].Address = ":8081"
		}, `listeners[1].name: duplicate name ":8080"`},
		{"ipv6 listener", func(c *Config) { c.Listeners[0].Address = "[::1]:80" }, ""},
		{"target without host", func(c *Config) { c.Upstreams[0].Targets[0].Address = ":80" }, "the host is required"},
		{"duplicate target", func(c *Config) {
			c.Upstreams[0].Targets = append(c.Upstreams[0].Targets, c.Upstreams[0].Targets[0])
		}, "use weight instead"},
		{"weight too large", func(c *Config) { c.Upstreams[0].Targets[0].Weight = maxWeight + 1 }, "weight: must be between 1 and"},
		{"duplicate upstream", func(c *Config) { c.Upstreams = append(c.Upstreams, c.Upstreams[0]) }, `upstreams[1].id: duplicate upstream id "app"`},
		{"keepalive nil pointers accepted", func(c *Config) { c.Upstreams[0].Keepalive = Keepalive{} }, ""},
		{"keepalive negative max_pending", func(c *Config) { c.Upstreams[0].Keepalive.MaxPending = ptr(-1) }, "keepalive.max_pending: must not be negative"},
		{"keepalive negative max_idle", func(c *Config) { c.Upstreams[0].Keepalive.MaxIdle = ptr(-3) }, "keepalive.max_idle: must not be negative"},
		{"safety fraction 1", func(c *Config) { c.Upstreams[0].Keepalive.SafetyFraction = ptr(1.0) }, "safety_fraction: must be between 0 and 1"},
		{"upstream timeout zero", func(c *Config) { c.Upstreams[0].Timeouts.Read = 0 }, "upstreams[0].timeouts.read: must be positive"},
		{"route id charset", func(c *Config) { c.Routes[0].ID = "a/b" }, `routes[0].id: invalid id "a/b"`},
		{"route negative body", func(c *Config) { c.Routes[0].MaxBodyBytes = -5 }, "routes[0].max_body_bytes: must not be negative"},
		{"route upstream with bad id still found", func(c *Config) {
			c.Upstreams[0].ID = "bad id"
			c.Routes[0].Upstream = "bad id"
		}, `upstreams[0].id: invalid id "bad id"`},
		{"prefix with template", func(c *Config) { c.Routes[0].Match.PathPrefix = "/u/{id}" }, "only supported in path"},
		{"path with query", func(c *Config) { c.Routes[0].Match.Path = "/a?b=1" }, "must not contain '?'"},
		{"method not a token", func(c *Config) { c.Routes[0].Match.Methods = []string{"GE T"} }, `invalid method "GE T"`},
		{"duplicate method", func(c *Config) { c.Routes[0].Match.Methods = []string{"GET", "get"} }, `duplicate method "get"`},
		{"duplicate host", func(c *Config) { c.Routes[0].Match.Hosts = []string{"a.com", "a.com"} }, `duplicate host "a.com"`},
		{"query regex bad", func(c *Config) {
			c.Routes[0].Match.Query = []ValueMatch{{Name: "q", Regex: "("}}
		}, "match.query[0].regex: invalid regular expression"},
		{"query exact empty string is a condition", func(c *Config) {
			c.Routes[0].Match.Query = []ValueMatch{{Name: "q", Exact: ptr("")}}
		}, ""},
		{"rewrite regex without replacement", func(c *Config) { c.Routes[0].Rewrite.PathRegex = "^/a" }, "path_replacement: required with path_regex"},
		{"rewrite replacement without regex", func(c *Config) { c.Routes[0].Rewrite.PathReplacement = "/b" }, "path_regex: required with path_replacement"},
		{"strip prefix without slash", func(c *Config) { c.Routes[0].Rewrite.StripPrefix = "api" }, "strip_prefix: invalid path"},
		{"fixed host bad value", func(c *Config) {
			c.Routes[0].Rewrite.Host, c.Routes[0].Rewrite.HostValue = HostFixed, "a b"
		}, `host_value: invalid host "a b"`},
		{"fixed host with port", func(c *Config) {
			c.Routes[0].Rewrite.Host, c.Routes[0].Rewrite.HostValue = HostFixed, "api.internal:8443"
		}, ""},
		{"set header twice with different case", func(c *Config) {
			c.Routes[0].Rewrite.SetHeaders = map[string]string{"X-A": "1", "x-a": "2"}
		}, `same header as "X-A"`},
		{"set header value with newline", func(c *Config) {
			c.Routes[0].Rewrite.AddHeaders = map[string]string{"X-A": "1\r\nEvil: 1"}
		}, "must not contain CR, LF or NUL"},
		{"set host header", func(c *Config) {
			c.Routes[0].Rewrite.SetHeaders = map[string]string{"host": "x"}
		}, "use rewrite.host"},
		{"remove transfer-encoding", func(c *Config) {
			c.Routes[0].Rewrite.RemoveHeaders = []string{"Transfer-Encoding"}
		}, "Transfer-Encoding is a hop-by-hop header"},
		{"retry attempts at the maximum", func(c *Config) { c.Upstreams[0].Retry.Attempts = ptr(MaxRetryAttempts) }, ""},
		{"retry attempts over the maximum", func(c *Config) {
			c.Upstreams[0].Retry.Attempts = ptr(MaxRetryAttempts + 1)
		}, fmt.Sprintf("attempts: must be between 1 (no retries) and %d, got %d", MaxRetryAttempts, MaxRetryAttempts+1)},
		{"retry attempts zero", func(c *Config) { c.Upstreams[0].Retry.Attempts = ptr(0) }, "attempts: must be between 1"},
		{"negative shutdown grace", func(c *Config) { c.ShutdownGrace = ptr(Duration(-time.Second)) }, "shutdown_grace: must not be negative"},
		{"different priority is not a duplicate", func(c *Config) {
			c.Routes = append(c.Routes, &Route{ID: "r2", Upstream: "app", Priority: 1, Rewrite: Rewrite{Host: HostClient}})
		}, ""},
		{"same match is a duplicate", func(c *Config) {
			c.Routes = append(c.Routes, &Route{ID: "r2", Upstream: "app"})
		}, `routes[1].match: same priority and match as route "r" (routes[0])`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.modify(c)
			err := c.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Validate: unexpected error %v", err)
			case tc.want != "" && err == nil:
				t.Errorf("Validate: no error, want %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Errorf("Validate: got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestValidateNamesFile(t *testing.T) {
	c := validConfig()
	c.File = "x.yaml"
	c.Routes[0].Upstream = "nope"
	err := c.Validate()
	if err == nil || err.Error() != `x.yaml: routes[0].upstream: unknown upstream "nope"` {
		t.Errorf("got %v", err)
	}
}

func TestCheckPathTemplate(t *testing.T) {
	tests := []struct {
		path string
		want string // "" means valid
	}{
		{"/", ""},
		{"/healthz", ""},
		{"/users/{id}", ""},
		{"/users/{id}/orders/{order_id}", ""},
		{"/files/{rest...}", ""},
		{"/{a}/{b...}", ""},
		{"/a//b", ""},
		{"users", `must start with "/"`},
		{"/a/{id", "must be a whole segment"},
		{"/a/id}", "must be a whole segment"},
		{"/a/x{id}", "must be a whole segment"},
		{"/a/{}", `parameter name ""`},
		{"/a/{...}", `parameter name ""`},
		{"/a/{b-c}", `parameter name "b-c"`},
		{"/{rest...}/x", "must be the last segment"},
		{"/{a}/{a...}", `parameter "a" appears twice`},
		{"/a b", "spaces"},
		{"/a#b", "'?' or '#'"},
	}
	for _, tc := range tests {
		t.Run(tc.path, func(t *testing.T) {
			err := checkPathTemplate(tc.path)
			if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
				t.Errorf("checkPathTemplate(%q) = %v, want %q", tc.path, err, tc.want)
			}
		})
	}
}

func TestCheckRouteHost(t *testing.T) {
	tests := []struct {
		host string
		ok   bool
	}{
		{"example.com", true},
		{"a-b.example.com", true},
		{"localhost", true},
		{"127.0.0.1", true},
		{"*.example.com", true},
		{"*.com", true},
		{"", false},
		{"*", false},
		{"*.", false},
		{"*.*.example.com", false},
		{"a.*.com", false},
		{"*example.com", false},
		{"example.com.", false},
		{"-a.example.com", false},
		{"a-.example.com", false},
		{"a..b", false},
		{"Example.com", false}, // Parse lowercases before validating
		{"exa_mple.com", false},
		{"example.com:80", false},
		{strings.Repeat("a", 64) + ".com", false},
	}
	for _, tc := range tests {
		t.Run(tc.host, func(t *testing.T) {
			if err := checkRouteHost(tc.host); (err == nil) != tc.ok {
				t.Errorf("checkRouteHost(%q) = %v, want ok=%v", tc.host, err, tc.ok)
			}
		})
	}
}

func TestCheckHostPort(t *testing.T) {
	tests := []struct {
		addr     string
		listener bool
		ok       bool
	}{
		{":8080", true, true},
		{"127.0.0.1:0", true, true},
		{"[::1]:443", true, true},
		{"my_service:80", false, true},
		{"Backend.Internal:80", false, true},
		{":8080", false, false},
		{"10.0.0.1:0", false, false},
		{"10.0.0.1", false, false},
		{"10.0.0.1:http", false, false},
		{"10.0.0.1:65536", true, false},
		{"10.0.0.1:-1", true, false},
		{"a b:80", true, false},
		{"http://x:80", false, false},
	}
	for _, tc := range tests {
		t.Run(tc.addr, func(t *testing.T) {
			if err := checkHostPort(tc.addr, tc.listener); (err == nil) != tc.ok {
				t.Errorf("checkHostPort(%q, %v) = %v, want ok=%v", tc.addr, tc.listener, err, tc.ok)
			}
		})
	}
}

func TestEffectiveTimeouts(t *testing.T) {
	s := func(n int) Duration { return Duration(time.Duration(n) * time.Second) }
	tests := []struct {
		name     string
		route    Timeouts
		upstream Timeouts
		want     Timeouts
	}{
		{"all inherited", Timeouts{}, Timeouts{Connect: s(1), Read: s(2), Write: s(3)}, Timeouts{Connect: s(1), Read: s(2), Write: s(3)}},
		{"route overrides read", Timeouts{Read: s(9)}, Timeouts{Connect: s(1), Read: s(2), Write: s(3)}, Timeouts{Connect: s(1), Read: s(9), Write: s(3)}},
		{"defaults when both unset", Timeouts{}, Timeouts{}, Timeouts{Connect: DefaultConnectTimeout, Read: DefaultUpstreamReadTimeout, Write: DefaultUpstreamWriteTimeout}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Route{Timeouts: tc.route}.EffectiveTimeouts(Upstream{Timeouts: tc.upstream})
			if got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestKeepaliveValues(t *testing.T) {
	var unset Keepalive
	if !unset.IsEnabled() || !unset.LearnEnabled() || unset.IdleTimeoutValue() != DefaultKeepaliveIdleTimeout.D() ||
		unset.MaxIdleValue() != DefaultMaxIdle || unset.MaxPendingValue() != DefaultMaxPending ||
		unset.QueueTimeoutValue() != DefaultQueueTimeout.D() || unset.SafetyFractionValue() != DefaultSafetyFraction ||
		unset.UnsafeMaxIdleValue() != DefaultUnsafeMaxIdle.D() {
		t.Errorf("unset keepalive does not report defaults")
	}
	set := Keepalive{Enabled: ptr(false), IdleTimeout: ptr(Duration(time.Second)), MaxIdle: ptr(3), SafetyFraction: ptr(0.5)}
	if set.IsEnabled() || set.IdleTimeoutValue() != time.Second || set.MaxIdleValue() != 3 || set.SafetyFractionValue() != 0.5 {
		t.Errorf("set keepalive values not returned: %+v", set)
	}
	if (&Config{}).ShutdownGraceValue() != 30*time.Second {
		t.Error("ShutdownGraceValue default")
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		d    Duration
		want string
	}{
		{Duration(60 * time.Second), "60s"},
		{Duration(1500 * time.Millisecond), "1.5s"},
		{0, "0s"},
	}
	for _, tc := range tests {
		if got := tc.d.String(); got != tc.want {
			t.Errorf("Duration(%d).String() = %q, want %q", int64(tc.d), got, tc.want)
		}
	}
}
