package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const warnBase = `listeners:
  - address: "127.0.0.1:8080"
upstreams:
  - id: app
    targets:
      - address: 127.0.0.1:9000
`

func TestWarnings(t *testing.T) {
	cases := []struct {
		name string
		yaml string // appended to the upstream "app" (indented 4), then the routes and extra
		tail string // top-level YAML after the routes
		want []string
	}{
		{name: "defaults: none"},
		{name: "long idle timeout with learning off",
			yaml: "    keepalive:\n      learn: false\n      idle_timeout: 600s\n",
			want: []string{":9: upstreams[0].keepalive.idle_timeout: 600s with learn: false is above"}},
		{name: "default idle timeout with learning off", yaml: "    keepalive:\n      learn: false\n",
			want: []string{":7: upstreams[0].keepalive.idle_timeout: 60s with learn: false"}},
		{name: "long idle timeout with learning on", yaml: "    keepalive:\n      idle_timeout: 600s\n"},
		{name: "short idle timeout with learning off",
			yaml: "    keepalive:\n      learn: false\n      idle_timeout: 4s\n"},
		{name: "keep-alive off",
			yaml: "    keepalive:\n      enabled: false\n",
			want: []string{":8: upstreams[0].keepalive.enabled: keep-alive is off"}},
		{name: "safety fraction above 0.95",
			yaml: "    keepalive:\n      safety_fraction: 0.97\n",
			want: []string{":8: upstreams[0].keepalive.safety_fraction: 0.97 leaves less than 5% margin"}},
		{name: "safety fraction 0.95", yaml: "    keepalive:\n      safety_fraction: 0.95\n"},
		{name: "non-idempotent retries on upstream and route",
			yaml: "    retry:\n      non_idempotent: true\n",
			tail: "  - id: post\n    upstream: app\n    match:\n      methods: [POST]\n    retry:\n      non_idempotent: true\n",
			want: []string{
				":8: upstreams[0].retry.non_idempotent: POST, PATCH and other",
				":17: routes[1].retry.non_idempotent: POST, PATCH and other",
			}},
		{name: "non-idempotent retries off", yaml: "    retry:\n      non_idempotent: false\n"},
		{name: "admin on all interfaces",
			tail: "admin:\n  address: \":9180\"\n  api_key: 0123456789abcdef0123\n",
			want: []string{`:11: admin.address: the admin listener ":9180" is reachable from the network`}},
		{name: "admin on loopback", tail: "admin:\n  address: 127.0.0.1:9999\n"},
		{name: "admin off", tail: "admin:\n  enabled: false\n  address: 0.0.0.0:9180\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			routes := "routes:\n  - id: all\n    upstream: app\n"
			extra := ""
			if strings.HasPrefix(tc.tail, "  - ") {
				routes += tc.tail
			} else {
				extra = tc.tail
			}
			path := filepath.Join(t.TempDir(), "sluice.yaml")
			if err := os.WriteFile(path, []byte(warnBase+tc.yaml+routes+extra), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got := Warnings(c)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d warnings, want %d:\n%s", len(got), len(tc.want), strings.Join(got, "\n"))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], path) || !strings.Contains(got[i], w) {
					t.Errorf("warning %d = %q, want %q after the file name", i, got[i], w)
				}
			}
		})
	}
}

// TestWarningsWithoutSource: a config whose file changed or that was built in code still
// gets its warnings, without line numbers.
func TestWarningsWithoutSource(t *testing.T) {
	data := warnBase + "    keepalive:\n      enabled: false\nroutes:\n  - id: all\n    upstream: app\n"
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(data+"# edited\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	want := path + ": upstreams[0].keepalive.enabled: keep-alive is off"
	if got := Warnings(c); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("changed file: got %q, want one starting %q", got, want)
	}
	c.File = ""
	want = "upstreams[0].keepalive.enabled: keep-alive is off"
	if got := Warnings(c); len(got) != 1 || !strings.HasPrefix(got[0], want) {
		t.Errorf("no file: got %q, want one starting %q", got, want)
	}
}

func TestWarningsEmbeddedDefault(t *testing.T) {
	c, err := Default()
	if err != nil {
		t.Fatal(err)
	}
	if got := Warnings(c); len(got) != 0 {
		t.Errorf("the embedded default config has warnings: %q", got)
	}
}
