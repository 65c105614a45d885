package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// The tests here that run `sluice` as a process (signals, reloads, logs as an operator sees
// them) share one binary, built once per test run.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

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

// sluiceBin returns the shared binary.
func sluiceBin(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the sluice binary")
	}
	binOnce.Do(func() {
		var dir string
		dir, binErr = os.MkdirTemp("", "sluice-bin-")
		if binErr != nil {
			return
		}
		binDir, binPath = dir, filepath.Join(dir, "sluice")
		var b []byte
		b, binErr = exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if binErr != nil {
			binErr = fmt.Errorf("go build: %v\n%s", binErr, b)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
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

// proc is a running `sluice run` with its process log captured.
type proc struct {
	t      *testing.T
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr []string
	done   chan error
}

func startSluice(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, cmd: exec.Command(sluiceBin(t), args...), done: make(chan error, 1)}
	errPipe, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p.cmd.Stdout = io.Discard
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(errPipe)
		for sc.Scan() {
			p.mu.Lock()
			p.stderr = append(p.stderr, sc.Text())
			p.mu.Unlock()
		}
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	return p
}

func (p *proc) lines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.stderr...)
}

// waitLog waits until a process log line contains s and returns its index.
func (p *proc) waitLog(s string, from int) int {
	p.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		ls := p.lines()
		for i := from; i < len(ls); i++ {
			if strings.Contains(ls[i], s) {
				return i
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	p.t.Fatalf("no process log line with %q after line %d:\n%s", s, from, strings.Join(p.lines(), "\n"))
	return -1
}

func (p *proc) signal(sig syscall.Signal) {
	p.t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		p.t.Fatal(err)
	}
}

func httpGet(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// waitFile waits until the file at path contains s (the access log flushes every 100 ms).
func waitFile(t *testing.T, path, s string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if b, _ := os.ReadFile(path); bytes.Contains(b, []byte(s)) {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("%s never contained %q:\n%s", path, s, b)
}

func fileContains(path, s string) bool {
	b, _ := os.ReadFile(path)
	return bytes.Contains(b, []byte(s))
}

// TestRunLogsAsOperated runs the binary as an operator would: `sluice run FILE` serves
// FILE; SIGUSR1 after a rotation (mv) reopens the access log; a reload applies the log
// section (level and access destination, "off" included); every process log line is JSON
// with each key once and durations as strings; SIGTERM exits 0.
func TestRunLogsAsOperated(t *testing.T) {
	be := idleBackend(t, time.Minute)
	dir := t.TempDir()
	listen, admin := deadAddr(t), deadAddr(t) // free a moment ago
	access := filepath.Join(dir, "access.log")
	cfgText := func(level, accessDest string) string {
		return fmt.Sprintf(`listeners:
  - address: %s
upstreams:
  - id: be
    targets: [{address: "%s"}]
routes:
  - {id: all, upstream: be}
admin: {address: "%s"}
log: {level: %s, access: "%s"}
`, listen, be, admin, level, accessDest)
	}
	cfg := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(cfg, []byte(cfgText("debug", access)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := startSluice(t, "run", cfg)
	p.waitLog(`"sluice started"`, 0)
	if code := httpGet(t, "http://"+admin+"/admin/readyz"); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	for _, args := range [][]string{{"health", "-admin", admin}, {"health", "-ready", "-c", cfg}} {
		if out, err := exec.Command(sluiceBin(t), args...).CombinedOutput(); err != nil {
			t.Errorf("sluice %q: %v\n%s", args, err, out)
		}
	}
	if out, err := exec.Command(sluiceBin(t), "health", "-admin", deadAddr(t)).CombinedOutput(); err == nil {
		t.Errorf("sluice health against a dead address exited 0: %s", out)
	}
	if ls := p.lines(); strings.Contains(strings.Join(ls, "\n"), "demo") {
		t.Errorf("a config file was given, but the demo is mentioned:\n%s", strings.Join(ls, "\n"))
	}
	httpGet(t, "http://"+listen+"/first")
	waitFile(t, access, `"/first"`)

	// A malformed request makes the server log at debug (its logger came from the gateway's).
	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprint(c, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
	io.Copy(io.Discard, c)
	c.Close()
	p.waitLog(`"rejected malformed request"`, 0)

	// Rotation: move the file away, SIGUSR1, and new lines go to a new file of the same name.
	if err := os.Rename(access, access+".1"); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGUSR1)
	p.waitLog(`"access log reopened"`, 0)
	httpGet(t, "http://"+listen+"/after-rotation")
	waitFile(t, access, `"/after-rotation"`)
	if fileContains(access+".1", "/after-rotation") {
		t.Error("a line after SIGUSR1 went to the moved file")
	}

	// Reload to level error and access off: no access lines, no INFO lines any more.
	if err := os.WriteFile(cfg, []byte(cfgText("error", "off")), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	reloaded := p.waitLog(`"config reloaded"`, 0)
	httpGet(t, "http://"+listen+"/while-off")
	p.signal(syscall.SIGHUP) // a second reload: its INFO lines must not appear
	waitReloads(t, admin, 2)
	time.Sleep(300 * time.Millisecond) // the access log flushes every 100 ms: give a line time to appear
	if fileContains(access, "/while-off") {
		t.Error("an access line was written after a reload to access: off")
	}
	for _, l := range p.lines()[reloaded+1:] {
		if strings.Contains(l, `"level":"INFO"`) || strings.Contains(l, `"level":"DEBUG"`) {
			t.Errorf("after a reload to level error: %s", l)
		}
	}

	// Reload to another file at level info: lines go there, and INFO lines come back.
	other := filepath.Join(dir, "other.log")
	if err := os.WriteFile(cfg, []byte(cfgText("info", other)), 0o644); err != nil {
		t.Fatal(err)
	}
	p.signal(syscall.SIGHUP)
	waitReloads(t, admin, 3)
	httpGet(t, "http://"+listen+"/other")
	waitFile(t, other, `"/other"`)

	p.signal(syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit 10s after SIGTERM")
	}
	checkProcessLog(t, p.lines())
}

// waitReloads waits until the admin API counts n successful reloads.
func waitReloads(t *testing.T, admin string, n int) {
	t.Helper()
	want := fmt.Sprintf(`sluice_config_reloads_total{result="success"} %d`, n)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := http.Get("http://" + admin + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if bytes.Contains(b, []byte(want)) {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("never saw %s", want)
}

// checkProcessLog: every line is a JSON object with each key once, and no duration is a
// bare integer of nanoseconds.
func checkProcessLog(t *testing.T, lines []string) {
	t.Helper()
	for _, l := range lines {
		if !strings.HasPrefix(l, "{") {
			continue // the demo's curl hints are plain text, and only for the demo
		}
		if rep := testutil.RepeatedKeys(t, l); rep != nil {
			t.Errorf("keys %q more than once: %s", rep, l)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("%v: %s", err, l)
		}
		for _, k := range []string{"grace", "ttl", "retry_in"} {
			if v, ok := m[k]; ok && !bytes.HasPrefix(v, []byte(`"`)) {
				t.Errorf("duration %s=%s is not a string: %s", k, v, l)
			}
		}
	}
}
