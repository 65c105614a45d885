package probe

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestMain fails the run if probe goroutines outlive the tests (Go net/http/main_test.go).
func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		probeCode := func(g string) bool {
			return strings.Contains(g, "sluice/internal/probe.") && !strings.Contains(g, "probe.TestMain")
		}
		if leaked := testutil.Leaked(5*time.Second, probeCode); leaked != "" {
			fmt.Fprintf(os.Stderr, "leaked probe goroutines:\n%s\n", leaked)
			code = 1
		}
	}
	os.Exit(code)
}
