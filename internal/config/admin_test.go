package config

import (
	"strings"
	"testing"
)

func TestValidateAdmin(t *testing.T) {
	const key = "0123456789abcdef0123"
	tests := []struct {
		name  string
		admin string // the admin block, indented under "admin:"
		want  string // "" means valid
	}{
		{name: "defaults", admin: "", want: ""},
		{name: "loopback without key", admin: "address: 127.0.0.1:9181", want: ""},
		{name: "ipv6 loopback without key", admin: "address: \"[::1]:9181\"", want: ""},
		{name: "localhost without key", admin: "address: localhost:9181", want: ""},
		{name: "port 0", admin: "address: 127.0.0.1:0", want: ""},
		{name: "all interfaces with key", admin: "address: \":9180\"\n  api_key: " + key, want: ""},
		{name: "all interfaces without key", admin: "address: \":9180\"",
			want: `test.yaml:10: admin.api_key: required because admin.address ":9180" is reachable from other hosts`},
		{name: "public ip without key", admin: "address: 10.1.2.3:9180",
			want: `admin.api_key: required because admin.address "10.1.2.3:9180"`},
		{name: "host name without key", admin: "address: admin.internal:9180",
			want: `admin.api_key: required`},
		{name: "disabled non-loopback without key", admin: "enabled: false\n  address: \":9180\"", want: ""},
		{name: "bad address", admin: "address: nowhere", want: `test.yaml:11: admin.address: invalid address "nowhere"`},
		{name: "bad port", admin: "address: 127.0.0.1:http", want: "admin.address: invalid address \"127.0.0.1:http\": port must be a number"},
		{name: "same as a listener", admin: "address: 127.0.0.1:8080", want: `admin.address: same address as listeners[0] ("127.0.0.1:8080")`},
		{name: "short key", admin: "api_key: abc", want: "admin.api_key: too short (3 characters)"},
		{name: "key with space", admin: "api_key: \"0123456789 abcdef\"", want: "admin.api_key: must be printable ASCII without spaces"},
		{name: "unknown field", admin: "token: x", want: "token"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			doc := `listeners:
  - address: 127.0.0.1:8080
upstreams:
  - id: app
    targets:
      - address: 127.0.0.1:9000
routes:
  - id: r
    upstream: app
admin:
  enabled: true
`
			if tc.admin != "" {
				doc = strings.Replace(doc, "  enabled: true\n", "  "+tc.admin+"\n", 1)
			}
			cfg, err := Parse("test.yaml", []byte(doc))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("unexpected error: %v\n%s", err, doc)
				}
				if cfg.Admin.Address == "" || cfg.Admin.Enabled == nil {
					t.Errorf("defaults not applied: %+v", cfg.Admin)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestAdminDefaults(t *testing.T) {
	c := validConfig()
	if !c.Admin.IsEnabled() || c.Admin.Address != DefaultAdminAddress || c.Admin.APIKey != "" {
		t.Errorf("admin defaults = %+v, want enabled on %s with no key", c.Admin, DefaultAdminAddress)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("default admin block is invalid: %v", err)
	}
}

func TestIsLoopback(t *testing.T) {
	tests := []struct {
		addr string
		want bool
	}{
		{"127.0.0.1:9180", true},
		{"127.0.0.2:9180", true},
		{"[::1]:9180", true},
		{"LOCALHOST:9180", true},
		{":9180", false},
		{"0.0.0.0:9180", false},
		{"[::]:9180", false},
		{"192.168.1.1:9180", false},
		{"example.com:9180", false},
		{"garbage", false},
	}
	for _, tc := range tests {
		if got := isLoopback(tc.addr); got != tc.want {
			t.Errorf("isLoopback(%q) = %t, want %t", tc.addr, got, tc.want)
		}
	}
}
