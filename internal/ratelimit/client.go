package ratelimit

import (
	"context"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// ClientOptions say how to reach Redis.
type ClientOptions struct {
	// Addr is host:port.
	Addr string
	// Username and Password (Redis 6 ACL; Password alone for requirepass).
	Username, Password string
	// DB is the database number.
	DB int
	// PoolSize is the most connections to Redis (0: go-redis's default, 10 per CPU).
	PoolSize int
	// DialTimeout bounds a connection attempt (0: 1s). A decision's own timeout also
	// bounds it.
	DialTimeout time.Duration
}

var quietOnce sync.Once

// quietLogger drops go-redis's own log lines: with Redis down it logs every failed dial,
// unthrottled. The limiter logs failures itself, at most one line per LogEvery.
type quietLogger struct{}

func (quietLogger) Printf(context.Context, string, ...any) {}

// NewClient returns a go-redis client for rate limiting: no retries (a script whose answer
// was lost may have counted the request already, and a retry would count it twice), one
// dial attempt, and request deadlines applied to the socket.
func NewClient(o ClientOptions) *redis.Client {
	quietOnce.Do(func() { redis.SetLogger(quietLogger{}) })
	if o.DialTimeout <= 0 {
		o.DialTimeout = time.Second
	}
	return redis.NewClient(&redis.Options{Addr: o.Addr, Username: o.Username, Password: o.Password, DB: o.DB,
		PoolSize: o.PoolSize, DialTimeout: o.DialTimeout, MaxRetries: -1, DialerRetries: 1,
		ContextTimeoutEnabled: true})
}

// Clients shares one client per distinct ClientOptions among the limiters that use it (a
// config with many Redis-backed limits opens one pool per Redis, not one per limit).
type Clients struct {
	mu sync.Mutex
	m  map[ClientOptions]*sharedClient
}

type sharedClient struct {
	c    *redis.Client
	refs int
}

// Get returns the client for o; call the returned release when done with it. The last
// release closes the client.
func (cs *Clients) Get(o ClientOptions) (*redis.Client, func()) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if cs.m == nil {
		cs.m = map[ClientOptions]*sharedClient{}
	}
	sc := cs.m[o]
	if sc == nil {
		sc = &sharedClient{c: NewClient(o)}
		cs.m[o] = sc
	}
	sc.refs++
	var once sync.Once
	return sc.c, func() {
		once.Do(func() {
			cs.mu.Lock()
			defer cs.mu.Unlock()
			if sc.refs--; sc.refs == 0 {
				delete(cs.m, o)
				_ = sc.c.Close()
			}
		})
	}
}
