package server

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

type diffKey struct{}

// ctxUnder is a context under test with its end (a streamCtx, or the context.WithCancelCause
// one it stands for).
type ctxUnder struct {
	ctx context.Context
	end func(error)
}

// observe describes what a caller can see of c: Err, Cause, Deadline, Done, a value, and the
// same of a context derived from it (cancelable, with a value, with a deadline).
func observe(c context.Context) string {
	done := false
	select {
	case <-c.Done():
		done = true
	default:
	}
	dl, hasDL := c.Deadline()
	return fmt.Sprintf("err=%v cause=%v done=%v deadline=%v,%v value=%v",
		c.Err(), context.Cause(c), done, dl, hasDL, c.Value(diffKey{}))
}

// TestStreamCtxLikeWithCancelCause runs the same steps on a streamCtx and on a
// context.WithCancelCause context and compares what every caller sees after each: Err,
// Cause, Done, Deadline, Value, contexts derived before or after the end (WithCancel,
// WithValue, WithTimeout, WithoutCancel), context.AfterFunc, an end twice, an end with a
// nil cause, and Err asked after the end before anything made the context.
func TestStreamCtxLikeWithCancelCause(t *testing.T) {
	first, second := errors.New("first"), errors.New("second")
	type step func(c ctxUnder, seen *[]string)
	see := func(label string, f func(c ctxUnder) context.Context) step {
		return func(c ctxUnder, seen *[]string) { *seen = append(*seen, label+": "+observe(f(c))) }
	}
	self := see("self", func(c ctxUnder) context.Context { return c.ctx })
	end := func(cause error) step { return func(c ctxUnder, _ *[]string) { c.end(cause) } }
	errOnly := func(c ctxUnder, seen *[]string) { *seen = append(*seen, fmt.Sprint("err only: ", c.ctx.Err())) }
	// derived makes contexts from the one under test, and context.AfterFunc; what they say
	// is seen at the end of the steps (seeDerived), once every step ran.
	var later []func(seen *[]string)
	derived := func(c ctxUnder, _ *[]string) {
		ch, stop := context.WithCancel(c.ctx)
		v := context.WithValue(c.ctx, diffKey{}, "v")
		tm, stopT := context.WithTimeout(c.ctx, time.Hour)
		wo := context.WithoutCancel(c.ctx)
		ran := make(chan struct{})
		context.AfterFunc(c.ctx, func() { close(ran) })
		later = append(later, func(seen *[]string) {
			defer stop()
			defer stopT()
			if c.ctx.Err() != nil {
				select {
				case <-ran:
				case <-time.After(10 * time.Second):
					t.Error("context.AfterFunc did not run after the end")
				}
			}
			_, hasDL := tm.Deadline()
			*seen = append(*seen, "child: "+observe(ch), "value: "+observe(v), "wo: "+observe(wo),
				fmt.Sprint("timeout: ", tm.Err(), context.Cause(tm), hasDL))
		})
	}
	seeDerived := func(seen *[]string) {
		for _, f := range later {
			f(seen)
		}
		later = nil
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{"runs", []step{errOnly, self}},
		{"ends unmade", []step{end(first), errOnly, end(second), self}},
		{"ends with nil", []step{end(nil), errOnly, self}},
		{"derived then ended", []step{derived, end(first), end(second), self}},
		{"ended then derived", []step{end(first), derived, self}},
		{"made then ended twice", []step{self, end(first), end(second), errOnly, self}},
		{"ended nil then cause", []step{end(nil), end(first), self, derived}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got, want []string
			t.Run("streamCtx", func(t *testing.T) {
				c := new(streamCtx)
				for _, s := range tc.steps {
					s(ctxUnder{c, c.end}, &got)
				}
				seeDerived(&got)
			})
			t.Run("WithCancelCause", func(t *testing.T) {
				ctx, cancel := context.WithCancelCause(context.Background())
				defer cancel(nil) // after the steps: as the stream's release
				for _, s := range tc.steps {
					s(ctxUnder{ctx, cancel}, &want)
				}
				seeDerived(&want)
			})
			if len(got) == 0 || fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("streamCtx:\n%q\nWithCancelCause:\n%q", got, want)
			}
		})
	}
}
