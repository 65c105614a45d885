package gateway

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// TestH2Spec runs h2spec (github.com/summerwind/h2spec, pinned as a go.mod tool) against a
// real gateway with a backend, over h2 (TLS, ALPN) and h2c: every one of its 145 cases
// must pass. It builds h2spec first (from the module cache: the go.mod tool line pins it).
func TestH2Spec(t *testing.T) {
	if testing.Short() {
		t.Skip("h2spec takes ~10 s")
	}
	bin := filepath.Join(t.TempDir(), "h2spec")
	build := exec.Command("go", "build", "-o", bin, "github.com/summerwind/h2spec/cmd/h2spec")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building h2spec: %v\n%s", err, out)
	}
	be := hostport(echoBackend(t, "a"))
	summary := regexp.MustCompile(`(\d+) tests, (\d+) passed, (\d+) skipped, (\d+) failed`)
	for _, m := range h2Modes() {
		t.Run(m.name, func(t *testing.T) {
			s := startH2(t, m.tls, be, "")
			host, port, _ := net.SplitHostPort(s.addr)
			args := []string{"-h", host, "-p", port, "-o", "3"}
			if m.tls {
				args = append(args, "-t", "-k")
			}
			cmd := exec.Command(bin, args...)
			cmd.Env = append(os.Environ(), "NO_COLOR=1")
			out, _ := cmd.CombinedOutput() // it exits 1 when a case fails: the summary says
			sm := summary.FindSubmatch(out)
			if sm == nil {
				t.Fatalf("no h2spec summary:\n%s", out)
			}
			total, _ := strconv.Atoi(string(sm[1]))
			passed, _ := strconv.Atoi(string(sm[2]))
			t.Logf("h2spec %s: %s", m.name, sm[0])
			if passed != total || total < 145 {
				t.Fatalf("h2spec %s: %s\n%s", m.name, sm[0], out)
			}
		})
	}
}
