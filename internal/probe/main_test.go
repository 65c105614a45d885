package probe

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestMain fails the run if probe goroutines outlive the tests (Go net/http/main_test.go).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		if leaked := waitNoProbeGoroutines(5 * time.Second); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked probe goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}

// waitNoProbeGoroutines polls until no goroutine runs code of this package (test code
// aside); it returns their stacks if some remain after d.
func waitNoProbeGoroutines(d time.Duration) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var leaked []string
		for _, g := range strings.Split(string(buf), "\n\n") {
			if strings.Contains(g, "sluice/internal/probe.") && !strings.Contains(g, "probe.TestMain") &&
				!strings.Contains(g, "probe.waitNoProbeGoroutines") {
				leaked = append(leaked, g)
			}
		}
		if len(leaked) == 0 || time.Now().After(deadline) {
			return strings.Join(leaked, "\n\n")
		}
		time.Sleep(50 * time.Millisecond)
	}
}
