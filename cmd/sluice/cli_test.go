package main

import (
	"bytes"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"

	"sluice/internal/testutil"
)

// buildSluice builds the command with extra go build arguments into a temporary directory.
func buildSluice(t *testing.T, args ...string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "sluice")
	cmd := exec.Command("go", append(append([]string{"build", "-o", out}, args...), ".")...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	return out
}

func TestBuildInfo(t *testing.T) {
	vcs := func(rev, modified string) *debug.BuildInfo {
		return &debug.BuildInfo{GoVersion: "go1.26.0", Main: debug.Module{Version: "(devel)"},
			Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified},
				{Key: "vcs.time", Value: "2026-12-01T10:00:00Z"}, {Key: "CGO_ENABLED", Value: "0"}}}
	}
	tests := []struct {
		name             string
		stamped, stampRv string
		bi               *debug.BuildInfo
		version, rev     string
	}{
		{name: "ldflags win", stamped: "v0.5.0", bi: vcs("3f9c2d7a61e04b8f", "false"), version: "v0.5.0", rev: "3f9c2d7a61e04b8f"},
		{name: "go install @version", bi: &debug.BuildInfo{Main: debug.Module{Version: "v0.5.1"}}, version: "v0.5.1"},
		{name: "git checkout", bi: vcs("3f9c2d7a61e04b8f", "false"), version: "devel+3f9c2d7a61e0", rev: "3f9c2d7a61e04b8f"},
		{name: "modified work tree", bi: vcs("3f9c2d7a61e04b8f", "true"), version: "devel+3f9c2d7a61e0-dirty", rev: "3f9c2d7a61e04b8f"},
		{name: "stamped revision only", stampRv: "abc123", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, version: "devel+abc123", rev: "abc123"},
		{name: "toolchain revision wins", stampRv: "abc123", bi: vcs("def456", "false"), version: "devel+def456", rev: "def456"},
		{name: "nothing known", bi: &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}}, version: "dev"},
		{name: "no build info", version: "dev"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := buildInfo(tc.stamped, tc.stampRv, tc.bi)
			if f.Version != tc.version || f.Revision != tc.rev {
				t.Errorf("version %q revision %q, want %q %q", f.Version, f.Revision, tc.version, tc.rev)
			}
		})
	}
}

// TestVersionStampedAtBuild: the -ldflags stamps that scripts/release.sh uses reach
// `sluice version` and `version -v`.
func TestVersionStampedAtBuild(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := buildSluice(t, "-ldflags", "-X main.version=v9.8.7 -X main.revision=0123456789abcdef")
	out, err := exec.Command(bin, "version").Output()
	if err != nil || string(out) != "sluice v9.8.7\n" {
		t.Errorf("version: %q %v, want \"sluice v9.8.7\"", out, err)
	}
	out, err = exec.Command(bin, "version", "-v").Output()
	for _, want := range []string{"sluice v9.8.7\n", "revision:  0123456789abcdef", "go:        go1.", "platform:  "} {
		if err != nil || !strings.Contains(string(out), want) {
			t.Errorf("version -v: %v\n%s\nwant %q", err, out, want)
		}
	}
}

// TestHelpAndArguments: help exits 0 on stdout; wrong arguments exit 2 saying why; a config
// file given as the argument is read (not ignored for the demo).
func TestHelpAndArguments(t *testing.T) {
	bad := writeConfig(t, "listeners: []\n")
	noLogDir := writeConfig(t, `listeners: [{address: "127.0.0.1:0"}]
upstreams: [{id: a, targets: [{address: "127.0.0.1:9"}]}]
routes: [{id: a, upstream: a}]
admin: {enabled: false}
log: {access: /nonexistent-sluice-dir/access.log}
`)
	badPlugin := writeConfig(t, `listeners: [{address: "127.0.0.1:0"}]
upstreams: [{id: a, targets: [{address: "127.0.0.1:9"}]}]
routes:
  - id: api
    upstream: a
    plugins: [{name: key-auth, config: {hedaer: x}}]
`)
	// A certificate file whose chain puts the issuer before the leaf the key belongs to.
	ca := testutil.NewCA(t)
	leafPEM, keyPEM := ca.IssuePEM(t, testutil.CertOptions{DNSNames: []string{"a.test"}})
	chain, chainKey := filepath.Join(t.TempDir(), "chain.crt"), filepath.Join(t.TempDir(), "chain.key")
	testutil.WriteFile(t, chain, append(append([]byte{}, ca.CertPEM...), leafPEM...))
	testutil.WriteFile(t, chainKey, keyPEM)
	wrongChain := writeConfig(t, `listeners: [{address: "127.0.0.1:0", tls: {certificates: [{cert_file: `+chain+`, key_file: `+chainKey+`}]}}]
upstreams: [{id: a, targets: [{address: "127.0.0.1:9"}]}]
routes: [{id: a, upstream: a}]
`)
	tests := []struct {
		name           string
		args           []string
		code           int
		stdout, stderr string
	}{
		{name: "help", args: []string{"help"}, code: 0, stdout: "usage:"},
		{name: "run -h", args: []string{"run", "-h"}, code: 0, stdout: "usage: sluice run [FILE]"},
		{name: "run --help", args: []string{"run", "--help"}, code: 0, stdout: "-demo-backend"},
		{name: "validate -h", args: []string{"validate", "-h"}, code: 0, stdout: "usage: sluice validate FILE"},
		{name: "probe -h", args: []string{"probe", "-h"}, code: 0, stdout: "-max-wait"},
		{name: "health -h", args: []string{"health", "-h"}, code: 0, stdout: "-ready"},
		{name: "version -h", args: []string{"version", "-h"}, code: 0, stdout: "usage: sluice version"},
		{name: "unknown flag", args: []string{"run", "-bogus"}, code: 2, stderr: "flag provided but not defined: -bogus"},
		{name: "two files", args: []string{"run", "a.yaml", "b.yaml"}, code: 2, stderr: "one config file, got 2 arguments"},
		{name: "-c and another file", args: []string{"run", "-c", "a.yaml", "b.yaml"}, code: 2, stderr: "two config files: -c a.yaml and b.yaml"},
		{name: "run FILE reads it", args: []string{"run", bad}, code: 1, stderr: "listeners: at least one listener is required"},
		{name: "run FILE -demo-backend reads it", args: []string{"run", bad, "-demo-backend"}, code: 1, stderr: "listeners: at least one listener is required"},
		{name: "run missing file", args: []string{"run", filepath.Join(t.TempDir(), "nope.yaml")}, code: 1, stderr: "no such file"},
		{name: "validate FILE", args: []string{"validate", bad}, code: 1, stderr: "at least one listener"},
		{name: "validate warns about the host", args: []string{"validate", noLogDir}, code: 0,
			stdout: `warning: ` + noLogDir + `:5: log.access: directory "/nonexistent-sluice-dir" does not exist on this host`},
		{name: "validate checks plugin settings", args: []string{"validate", badPlugin}, code: 1,
			stderr: badPlugin + `:6: routes[0].plugins[0].config.hedaer: route "api": plugin key-auth: unknown field "hedaer"`},
		{name: "validate names a chain in the wrong order", args: []string{"validate", wrongChain}, code: 1,
			stderr: wrongChain + ":1: listeners[0].tls.certificates[0]: certificate file " + chain + ": the first certificate must be the server's (the leaf), but key " + chainKey + " matches certificate 2 of the chain: put that one first"},
		{name: "validate without file", args: []string{"validate"}, code: 2, stderr: "a config file is required"},
		{name: "version -x", args: []string{"version", "-x"}, code: 2, stderr: "unknown argument"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stdout.String(), tc.stdout) || !strings.Contains(stderr.String(), tc.stderr) {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s\nwant stdout %q, stderr %q", code, tc.code, &stdout, &stderr, tc.stdout, tc.stderr)
			}
		})
	}
}

// TestConfigUsage: `sluice config` refuses bad arguments before it reaches etcd (the
// commands themselves run against a real etcd in e2e/cluster_test.go).
func TestConfigUsage(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"config"}, "usage: sluice config push FILE"},
		{"unknown subcommand", []string{"config", "apply", "x.yaml"}, "usage: sluice config push FILE"},
		{"push without a file", []string{"config", "push", "-endpoints", "http://127.0.0.1:1"}, "usage:"},
		{"pull with a file", []string{"config", "pull", "x.yaml", "-endpoints", "http://127.0.0.1:1"}, "usage:"},
		{"no etcd given", []string{"config", "diff", "x.yaml"}, "say where etcd is: -c NODE_FILE, or -endpoints"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var out, errOut strings.Builder
			if code := run(tc.args, &out, &errOut); code != 2 {
				t.Fatalf("exit %d, want 2; stderr %s", code, errOut.String())
			}
			if !strings.Contains(errOut.String(), tc.want) {
				t.Errorf("stderr %q lacks %q", errOut.String(), tc.want)
			}
		})
	}
}
