package config

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestHostWarnings: what `sluice run` would fail on here although the file is valid is
// warned about with file:line: an access log directory that does not exist, a listener
// address in use, an address this host does not have; a usable setup gets no warning.
func TestHostWarnings(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	dir := t.TempDir()
	tests := []struct {
		name     string
		listener string
		access   string
		want     []string
	}{
		{name: "all fine", listener: "127.0.0.1:0", access: filepath.Join(dir, "access.log")},
		{name: "stdout", listener: "127.0.0.1:0", access: "stdout"},
		{name: "missing directory", listener: "127.0.0.1:0", access: filepath.Join(dir, "nope", "access.log"),
			want: []string{":9: log.access: directory " + fmt.Sprintf("%q", filepath.Join(dir, "nope")) + " does not exist on this host"}},
		{name: "address in use", listener: busy.Addr().String(), access: "off",
			want: []string{":2: listeners[0].address: " + fmt.Sprintf("%q", busy.Addr().String()) + " cannot be bound on this host now: in use"}},
		{name: "address this host lacks", listener: "192.0.2.1:8080", access: "off",
			want: []string{":2: listeners[0].address: \"192.0.2.1:8080\" cannot be bound on this host: it has no such address"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "sluice.yaml")
			yaml := fmt.Sprintf(`listeners:
  - address: "%s"
upstreams:
  - id: app
    targets: [{address: "127.0.0.1:9000"}]
routes:
  - {id: all, upstream: app}
admin: {enabled: false}
log: {access: "%s"}
`, tc.listener, tc.access)
			if err := os.WriteFile(path, []byte(yaml), 0o644); err != nil {
				t.Fatal(err)
			}
			c, err := Load(path)
			if err != nil {
				t.Fatal(err)
			}
			got := HostWarnings(c)
			if len(got) != len(tc.want) {
				t.Fatalf("warnings %q, want %d: %q", got, len(tc.want), tc.want)
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], path) || !strings.Contains(got[i], w) {
					t.Errorf("warning %q, want %s%s", got[i], path, w)
				}
			}
		})
	}
}
