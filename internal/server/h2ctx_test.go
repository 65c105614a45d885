package server

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

// TestStreamCtx: a stream's context is made only when needed, and made before or after
// the stream's end it says the same as a context.WithCancelCause one: Err, Done, the first
// cause (also for contexts derived from it and context.AfterFunc).
func TestStreamCtx(t *testing.T) {
	first, second := errors.New("first cause"), errors.New("second cause")
	tests := []struct {
		name string
		// before runs before the ends (nil: nothing); it may make the context.
		before   func(c *streamCtx)
		wantMade bool // the context is made before the ends
	}{
		{name: "never made before the end", before: func(c *streamCtx) { c.Err(); c.Deadline() }},
		{name: "made by Done", before: func(c *streamCtx) { c.Done() }, wantMade: true},
		{name: "not made by context.Cause while it runs", before: func(c *streamCtx) { context.Cause(c) }},
		{name: "made by Value", before: func(c *streamCtx) { c.Value(nil) }, wantMade: true},
		{name: "made by a derived context", before: func(c *streamCtx) { _, stop := context.WithCancel(c); stop() }, wantMade: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := new(streamCtx)
			tc.before(c)
			if c.Err() != nil {
				t.Fatalf("Err before the end = %v, want nil", c.Err())
			}
			if c.made.Load() != tc.wantMade {
				t.Fatalf("made = %v, want %v", c.made.Load(), tc.wantMade)
			}
			child, stop := context.WithCancel(c)
			defer stop()
			ran := make(chan struct{})
			context.AfterFunc(c, func() { close(ran) })
			c.end(first)
			c.end(second)
			if !errors.Is(c.Err(), context.Canceled) {
				t.Fatalf("Err after the end = %v, want context.Canceled", c.Err())
			}
			select {
			case <-c.Done():
			default:
				t.Fatal("Done not closed after the end")
			}
			if got := context.Cause(c); got != first {
				t.Fatalf("Cause = %v, want %v", got, first)
			}
			if got := context.Cause(child); got != first {
				t.Fatalf("derived context's Cause = %v, want %v", got, first)
			}
			select {
			case <-ran:
			case <-time.After(10 * time.Second):
				t.Fatal("context.AfterFunc did not run after the end")
			}
		})
	}
	t.Run("ended before it is made", func(t *testing.T) {
		c := new(streamCtx)
		c.end(first)
		c.end(second)
		if c.made.Load() {
			t.Fatal("the end made the context")
		}
		if !errors.Is(c.Err(), context.Canceled) || context.Cause(c) != first {
			t.Fatalf("Err %v, Cause %v; want context.Canceled, %v", c.Err(), context.Cause(c), first)
		}
		child, stop := context.WithCancel(c)
		defer stop()
		if context.Cause(child) != first {
			t.Fatalf("a context derived after the end has Cause %v, want %v", context.Cause(child), first)
		}
	})
}

// TestStreamCtxConcurrent: the context is made and ended from several goroutines at once
// (run with -race); every reader sees it canceled with the one cause after the end.
func TestStreamCtxConcurrent(t *testing.T) {
	cause := errors.New("gone")
	for range 200 {
		c := new(streamCtx)
		var wg sync.WaitGroup
		start := make(chan struct{})
		bound, stop := context.WithTimeout(context.Background(), 10*time.Second)
		timeout := bound.Done() // closed: every waiter sees it
		for i := range 4 {
			wg.Go(func() {
				<-start
				switch i {
				case 0:
					c.end(cause)
				case 1:
					select {
					case <-c.Done():
					case <-timeout:
						t.Error("Done not closed")
					}
				case 2:
					for c.Err() == nil {
						select {
						case <-timeout:
							t.Error("Err still nil")
							return
						default:
						}
					}
				case 3:
					context.Cause(c)
				}
			})
		}
		close(start)
		wg.Wait()
		stop()
		if t.Failed() {
			return
		}
		if context.Cause(c) != cause {
			t.Fatalf("Cause = %v, want %v", context.Cause(c), cause)
		}
	}
}
