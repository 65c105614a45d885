package testutil

import (
	"runtime"
	"strings"
	"time"
)

// Leaked polls, up to d, until no goroutine's stack satisfies match, and returns the stacks of
// those still running after d ("" when none). A TestMain calls it after m.Run to fail a run
// whose code left goroutines behind (the idea of Go's net/http/main_test.go).
func Leaked(d time.Duration, match func(stack string) bool) string {
	deadline := time.Now().Add(d)
	for {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		var left []string
		for g := range strings.SplitSeq(string(buf), "\n\n") {
			if match(g) {
				left = append(left, g)
			}
		}
		if len(left) == 0 || time.Now().After(deadline) {
			return strings.Join(left, "\n\n")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
