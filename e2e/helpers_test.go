package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// Helpers of the tests that check the logs, the docs and the packaging against the binary.

// lines returns the process log lines so far.
func (p *proc) lines() []string {
	s := strings.TrimRight(p.logs(), "\n")
	if s == "" {
		return nil
	}
	return strings.Split(s, "\n")
}

// waitLog waits until a process log line at index from or later contains s and returns its
// index.
func (p *proc) waitLog(t *testing.T, s string, from int) int {
	t.Helper()
	at := -1
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("a process log line with %q", s), func() bool {
		ls := p.lines()
		for i := from; i < len(ls); i++ {
			if strings.Contains(ls[i], s) {
				at = i
				return true
			}
		}
		return false
	})
	return at
}

func (p *proc) signal(t *testing.T, sig syscall.Signal) {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
}

// okBackend starts a backend that answers 200 "ok" and returns its address.
func okBackend(t *testing.T) string {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok\n") }))
	t.Cleanup(be.Close)
	return strings.TrimPrefix(be.URL, "http://")
}

// routeConfig is a config with a listener on listen and one catch-all route to backend,
// followed by the lines of tail.
func routeConfig(listen, backend, tail string) string {
	return fmt.Sprintf(`listeners:
  - address: %s
upstreams:
  - id: be
    targets: [{address: "%s"}]
routes:
  - {id: all, upstream: be}
`, listen, backend) + tail
}

// configFile writes body as sluice.yaml in a temporary directory and returns its path.
func configFile(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice.yaml")
	if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// status GETs url and returns the status (0 and a test error when it cannot).
func status(t *testing.T, url string) int {
	t.Helper()
	code, _, _, err := get(url)
	if err != nil {
		t.Errorf("GET %s: %v", url, err)
	}
	return code
}

// waitFile waits until the file at path contains s (the access log flushes every 100 ms).
func waitFile(t *testing.T, path, s string) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, path+" to contain "+s, func() bool { return fileContains(path, s) })
}

func fileContains(path, s string) bool {
	b, _ := os.ReadFile(path)
	return bytes.Contains(b, []byte(s))
}

// waitReloads waits until the admin API counts at least n successful reloads (the file
// watcher may reload a changed file once more after the SIGHUP that reloaded it).
func waitReloads(t *testing.T, admin string, n int) {
	t.Helper()
	re := regexp.MustCompile(`sluice_config_reloads_total\{result="success"\} (\d+)`)
	testutil.WaitFor(t, 10*time.Second, fmt.Sprintf("%d successful reloads", n), func() bool {
		_, _, body, err := get("http://" + admin + "/metrics")
		if err != nil {
			return false
		}
		m := re.FindStringSubmatch(body)
		if m == nil {
			return false
		}
		got, _ := strconv.Atoi(m[1])
		return got >= n
	})
}

// checkProcessLog: every JSON line has each key once, and no duration is a bare integer of
// nanoseconds.
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
