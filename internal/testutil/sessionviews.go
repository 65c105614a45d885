package testutil

import (
	"crypto/tls"
	"sync/atomic"
)

// SessionViews is a TLS client session cache that gives each new connection a view of its
// own (ForConn, the optional method connpool.ConnSessionCache adds, as the gateway's cache
// for a watched client certificate has) and counts the views given, so a test sees that
// every TLS dial took one. The views are the cache itself.
type SessionViews struct {
	tls.ClientSessionCache
	views atomic.Int64
}

// NewSessionViews returns a SessionViews over an LRU cache of 4 sessions.
func NewSessionViews() *SessionViews {
	return &SessionViews{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
}

// ForConn counts a view and returns it.
func (c *SessionViews) ForConn() tls.ClientSessionCache {
	c.views.Add(1)
	return c.ClientSessionCache
}

// Views is the number of views given.
func (c *SessionViews) Views() int64 { return c.views.Load() }
