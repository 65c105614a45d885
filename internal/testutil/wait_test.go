package testutil

import (
	"fmt"
	"runtime"
	"testing"
	"time"
)

// fatalRecorder is a testing.TB whose Fatalf records the message and ends the goroutine, as
// the real one does.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

func TestWaitFor(t *testing.T) {
	cases := []struct {
		name    string
		holdsAt int // the poll at which cond first holds; 0: never
		failure string
	}{
		{name: "holds at once", holdsAt: 1},
		{name: "holds after some polls", holdsAt: 4},
		{name: "never holds", failure: "timed out after 50ms waiting for the thing"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := &fatalRecorder{TB: t}
			polls := 0
			done := make(chan struct{})
			start := time.Now()
			go func() {
				defer close(done)
				WaitFor(r, 50*time.Millisecond, "the thing", func() bool {
					polls++
					return polls == tc.holdsAt
				})
			}()
			<-done
			if r.msg != tc.failure {
				t.Errorf("failure %q, want %q", r.msg, tc.failure)
			}
			if tc.holdsAt > 0 && polls != tc.holdsAt {
				t.Errorf("cond polled %d times, want %d (it held then)", polls, tc.holdsAt)
			}
			if d := time.Since(start); tc.failure != "" && d < 50*time.Millisecond {
				t.Errorf("gave up after %v, before the 50ms bound", d)
			}
		})
	}
}
