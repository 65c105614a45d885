package reason

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"
)

// TestDialFailure: a dial's failure is refused, timed out (its own deadline, or a context
// ended by a timeout cause, as an HTTP/2 attempt's timer ends it) or failed (a plain
// cancel: the request went away; anything else).
func TestDialFailure(t *testing.T) {
	live := context.Background()
	canceled, cancel := context.WithCancel(live)
	cancel()
	cut, cutCancel := context.WithCancelCause(live)
	cutCancel(fmt.Errorf("attempt timed out: %w", context.DeadlineExceeded))
	other, otherCancel := context.WithCancelCause(live)
	otherCancel(errors.New("retired"))
	tests := []struct {
		name   string
		ctx    context.Context
		err    error
		status int
		code   Code
	}{
		{name: "refused", ctx: live, err: fmt.Errorf("dial: %w", syscall.ECONNREFUSED), status: 502, code: ConnectRefused},
		{name: "connect timeout", ctx: live, err: os.ErrDeadlineExceeded, status: 504, code: ConnectTimeout},
		{name: "context deadline", ctx: live, err: context.DeadlineExceeded, status: 504, code: ConnectTimeout},
		{name: "cut by a timeout cause", ctx: cut, err: context.Canceled, status: 504, code: ConnectTimeout},
		{name: "request gone", ctx: canceled, err: context.Canceled, status: 502, code: ConnectFailed},
		{name: "cut by another cause", ctx: other, err: context.Canceled, status: 502, code: ConnectFailed},
		{name: "unreachable", ctx: live, err: syscall.EHOSTUNREACH, status: 502, code: ConnectFailed},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := DialFailure(tc.ctx, "10.0.0.1:80", tc.err)
			if e.Status != tc.status || e.Code != tc.code || e.Target != "10.0.0.1:80" || !errors.Is(e, tc.err) {
				t.Errorf("DialFailure: %d %s %q (%v); want %d %s", e.Status, e.Code, e.Target, e.Err, tc.status, tc.code)
			}
		})
	}
}
