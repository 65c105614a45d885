package testutil

import (
	"testing"
	"time"
)

// WaitFor polls cond every 5 ms until it holds, and fails t (naming what it waited for) if it
// still does not hold after d. Tests wait with it for an event they cannot be sent on a
// channel (a counter reaching n, a state change, a log line) instead of sleeping for a time
// that is too long on a fast machine and too short on a loaded one (the idea of
// waitCondition in Go's net/http/main_test.go). Call it from the test's goroutine.
func WaitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// WaitStill waits until count has not moved over three looks 100 ms apart (a writer blocked:
// an upload that filled the sockets of a backend that stopped reading), and fails t
// (naming what it waited for) if that did not happen within d.
func WaitStill(t testing.TB, d time.Duration, what string, count func() int64) {
	t.Helper()
	for deadline, still, last := time.Now().Add(d), 0, int64(-1); still < 3; {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
		if n := count(); n == last {
			still++
		} else {
			still, last = 0, n
		}
	}
}
