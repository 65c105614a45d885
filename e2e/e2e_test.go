// Package e2e builds the sluice binary and runs it as a user would: from the CLI, with config
// files on disk, real backends, signals and file edits.
package e2e

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testutil"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "sluice-e2e")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "sluice")
	build := exec.Command("go", "build", "-ldflags", "-X main.version=e2e-test", "-o", binary, "../cmd/sluice")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build sluice:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a running sluice process with its output captured.
type proc struct {
	cmd    *exec.Cmd
	mu     sync.Mutex
	stderr bytes.Buffer
	stdout bytes.Buffer
	done   chan error
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), done: make(chan error, 1)}
	p.cmd.Stdout = lockedWriter{&p.mu, &p.stdout}
	p.cmd.Stderr = lockedWriter{&p.mu, &p.stderr}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
		if t.Failed() {
			t.Logf("sluice stderr:\n%s", p.logs())
		}
	})
	return p
}

func (p *proc) logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stderr.String()
}

func (p *proc) access() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stdout.String()
}

func get(url string) (int, http.Header, string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b), nil
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(binary, "version").CombinedOutput()
	if err != nil || strings.TrimSpace(string(out)) != "sluice e2e-test" {
		t.Fatalf("sluice version: %q, %v", out, err)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte(`
listeners: [{address: "127.0.0.1:8080"}]
upstreams: [{id: a, targets: [{address: "127.0.0.1:9000"}]}]
routes: [{id: r, upstream: a}]
`), 0o644)
	out, err := exec.Command(binary, "validate", "-c", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("valid config: %s, %v", out, err)
	}

	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte(`listeners:
  - address: "127.0.0.1:8080"
upstreams:
  - id: a
    targets: [{address: "127.0.0.1:9000"}]
    keepalive:
      idle_timeout: 0s
routes:
  - id: r
    upstream: missing
  - id: r2
    upstream: a
    match: {path: "/x/{id", hosts: ["*bad"]}
`), 0o644)
	cmd := exec.Command(binary, "validate", "-c", bad)
	out, err = cmd.CombinedOutput()
	if err == nil || cmd.ProcessState.ExitCode() != 1 {
		t.Fatalf("invalid config accepted: %s", out)
	}
	for _, want := range []string{"bad.yaml:7:", "idle_timeout", "bad.yaml:10:", `unknown upstream "missing"`, "bad.yaml:13:"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("validate output lacks %q:\n%s", want, out)
		}
	}
}

func writeConfig(t *testing.T, path, listen, backend, version string) {
	t.Helper()
	cfg := fmt.Sprintf(`
listeners: [{address: %q}]
upstreams: [{id: echo, targets: [{address: %q}]}]
routes:
  - id: main
    upstream: echo
    rewrite: {set_headers: {X-Version: %q}}
log: {level: info}
shutdown_grace: 5s
`, listen, backend, version)
	replaceFile(t, path, cfg) // accesslog_test.go
}

func TestRunReloadAndDrain(t *testing.T) {
	slowStarted := make(chan struct{}, 1)
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			slowStarted <- struct{}{}
			time.Sleep(500 * time.Millisecond) // in flight when SIGTERM comes: the drain under test
		}
		w.Header().Set("X-Seen-Version", r.Header.Get("X-Version"))
		io.WriteString(w, "hello from backend")
	}))
	defer be.Close()
	backend := strings.TrimPrefix(be.URL, "http://")
	listen := testutil.FreeAddr(t)
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	writeConfig(t, path, listen, backend, "v1")

	p := start(t, "run", "-c", path)
	url := "http://" + listen
	testutil.WaitFor(t, 10*time.Second, "gateway to serve", func() bool {
		code, _, _, err := get(url + "/")
		return err == nil && code == 200
	})
	version := func() string {
		_, h, _, err := get(url + "/")
		if err != nil {
			return "error: " + err.Error()
		}
		return h.Get("X-Seen-Version")
	}
	if v := version(); v != "v1" {
		t.Fatalf("version = %q", v)
	}

	// A file edit is picked up by the watcher.
	writeConfig(t, path, listen, backend, "v2")
	testutil.WaitFor(t, 10*time.Second, "file reload to v2", func() bool { return version() == "v2" })

	// An invalid file is rejected and v2 keeps serving.
	os.WriteFile(path, []byte("listeners: [{address: 1}]\nbogus: true\n"), 0o644)
	testutil.WaitFor(t, 10*time.Second, "rejection log", func() bool { return strings.Contains(p.logs(), "config reload rejected") })
	if v := version(); v != "v2" {
		t.Fatalf("after a bad reload version = %q, want v2", v)
	}

	// SIGHUP reloads too (the watcher may race it; either way v3 must arrive).
	writeConfig(t, path, listen, backend, "v3")
	p.cmd.Process.Signal(syscall.SIGHUP)
	testutil.WaitFor(t, 10*time.Second, "reload to v3", func() bool { return version() == "v3" })

	// SIGTERM drains the in-flight request.
	type res struct {
		code int
		body string
		err  error
	}
	done := make(chan res, 1)
	go func() {
		code, _, body, err := get(url + "/slow")
		done <- res{code, body, err}
	}()
	<-slowStarted
	p.cmd.Process.Signal(syscall.SIGTERM)
	r := <-done
	if r.err != nil || r.code != 200 || r.body != "hello from backend" {
		t.Fatalf("in-flight request during SIGTERM: %d %q %v", r.code, r.body, r.err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("sluice exited with %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("sluice did not exit after SIGTERM")
	}
	// The access log has one JSON line per request with the documented fields.
	sc := bufio.NewScanner(strings.NewReader(p.access()))
	n := 0
	for sc.Scan() {
		if !strings.Contains(sc.Text(), `"route":"main"`) || !strings.Contains(sc.Text(), `"request_id":`) {
			t.Errorf("access line: %s", sc.Text())
		}
		n++
	}
	if n < 5 {
		t.Errorf("only %d access log lines", n)
	}
}

// TestRunEmbeddedDefault runs the README's command: `sluice run` with no config.
func TestRunEmbeddedDefault(t *testing.T) {
	for _, a := range []string{"127.0.0.1:8080", "127.0.0.1:9901"} {
		if ln, err := net.Listen("tcp", a); err != nil {
			t.Skipf("%s is in use here; the embedded default needs it", a)
		} else {
			ln.Close()
		}
	}
	p := start(t, "run")
	testutil.WaitFor(t, 10*time.Second, "demo to serve", func() bool {
		code, _, _, err := get("http://127.0.0.1:8080/hello")
		return err == nil && code == 200
	})
	_, _, body, _ := get("http://127.0.0.1:8080/api/users?id=7")
	if !strings.Contains(body, `"path": "/users"`) || !strings.Contains(body, "sluice demo echo") {
		t.Errorf("demo /api/users answered %s", body)
	}
	// The banner is printed once the config is applied, which can be just after the listener
	// answers its first request.
	testutil.WaitFor(t, 10*time.Second, "the URL to curl in the output", func() bool {
		return strings.Contains(p.logs(), "curl http://127.0.0.1:8080/")
	})
	// With no config file at all the demo runs, and the first log line says so (a service
	// manager that forgot the file sees it at once).
	if first, _, _ := strings.Cut(p.logs(), "\n"); !strings.Contains(first, "no config file given: serving the embedded demo config") {
		t.Errorf("first log line %q does not say the demo is running", first)
	}
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
		p.done <- nil
	case <-time.After(10 * time.Second):
		t.Fatal("did not stop on SIGTERM")
	}
}
