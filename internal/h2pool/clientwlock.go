package h2pool

import "context"

// wlock is a clientConn's write lock (wmu): a mutex whose wait a new stream can give up
// when its request's context ends. A writer holding it may be stuck in a Write on a backend
// that stopped reading; a stream still waiting then has sent nothing, so it fails as
// unprocessed (the proxy re-sends it on another connection) within its try timeout instead
// of waiting for the stuck write. A buffered channel of one: Lock sends, Unlock receives.
type wlock chan struct{}

func newWLock() wlock { return make(wlock, 1) }

func (l wlock) Lock()   { l <- struct{}{} }
func (l wlock) Unlock() { <-l }

// TryLock takes the lock if it is free.
func (l wlock) TryLock() bool {
	select {
	case l <- struct{}{}:
		return true
	default:
		return false
	}
}

// LockCtx takes the lock, or gives up when ctx ends.
func (l wlock) LockCtx(ctx context.Context) error {
	select {
	case l <- struct{}{}:
		return nil
	default:
	}
	select {
	case l <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}
