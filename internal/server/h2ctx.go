package server

import (
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// streamCtx is a Stream's Context. The context package's cancelable context (two
// allocations, and a cancel at the stream's end) is made only when something needs it:
// Done, Value (context.Cause asks that way once Err is not nil), or Err once the stream was
// canceled; until then Err answers from two flags. A proxied request needs none of these
// while its client stays (the proxy checks Err and is woken through OnCancel; the upstream
// pool uses the context only to dial or queue), so most streams never make it: one small
// allocation per stream instead of two, and nothing to cancel at release (docs/design.md,
// "HTTP/2 downstream: the stream's context made when needed").
//
// Once made, the real context is what the methods return or delegate to: Done is its
// channel and Value its values, so context.Cause and contexts derived from a streamCtx see
// it as their parent cancelCtx (they register with it directly, no goroutine) and get its
// cause. A streamCtx is allocated per stream, never pooled with the Stream: a context is
// handed to code (plugins, upstream attempts) that may keep it past the stream's end, so
// its lifetime is not the Stream's.
type streamCtx struct {
	made atomic.Bool // ctx is set: read it without mu
	gone atomic.Bool // canceled before ctx was made (cause holds why)

	mu     sync.Mutex
	ctx    context.Context // set once, under mu
	cancel context.CancelCauseFunc
	cause  error
}

var _ context.Context = (*streamCtx)(nil)

// real returns the context, made now if it was not yet (canceled with the stream's cause
// when the stream already ended).
func (c *streamCtx) real() context.Context {
	if c.made.Load() {
		return c.ctx
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		c.ctx, c.cancel = context.WithCancelCause(context.Background())
		if c.gone.Load() {
			c.cancel(c.cause)
		}
		c.made.Store(true)
	}
	return c.ctx
}

// end cancels the context with cause; the first cause stays, as with a cancel function.
func (c *streamCtx) end(cause error) {
	c.mu.Lock()
	if c.ctx == nil {
		if !c.gone.Load() {
			c.cause = cause
			c.gone.Store(true)
		}
		c.mu.Unlock()
		return
	}
	c.mu.Unlock()
	c.cancel(cause)
}

// Deadline: none (a stream's time limits are the listener's timeouts, not the context's).
func (c *streamCtx) Deadline() (time.Time, bool) { return time.Time{}, false }

// Done makes the context and returns its channel.
func (c *streamCtx) Done() <-chan struct{} { return c.real().Done() }

// Err is nil while the stream runs, without making the context.
func (c *streamCtx) Err() error {
	if !c.made.Load() && !c.gone.Load() {
		return nil
	}
	return c.real().Err()
}

// Value makes the context and returns its value for key (context.Cause's way to it).
func (c *streamCtx) Value(key any) any { return c.real().Value(key) }

func (c *streamCtx) String() string { return "server.Stream.Context" }
