package jwtauth

// The cache of verified tokens. A signature check costs 40-65 µs for RS256, ES256 and EdDSA
// on the development machine (BenchmarkVerify), more than the whole proxied request, and a
// client sends the same token with every request until it expires. So a verified token is
// remembered, keyed by its exact bytes (signature included: a token differing in one byte is
// a miss and is verified in full), until its exp (plus the leeway) passes. A hit is only
// valid while the key set that verified it is current: a JWKS refresh that replaces the set
// (a key removed by the issuer) turns every entry verified with the old set into a miss.
//
// The cache is bounded: Size entries over 16 shards, each a map under its own lock. A shard
// that is full drops an expired entry if it meets one, else an arbitrary one (Go's map
// iteration starts at a random place): no LRU list to update on every hit, and a flood of
// new valid tokens cannot grow memory beyond Size entries. Failures are never cached: a
// forged token is different bytes every time and caching it would only cost memory.

import (
	"hash/maphash"
	"sync"
	"time"
)

const cacheShards = 16

// Cache remembers verified tokens. It is safe for concurrent use.
type Cache struct {
	seed     maphash.Seed
	perShard int
	leeway   time.Duration
	shards   [cacheShards]cacheShard
}

type cacheShard struct {
	mu sync.RWMutex
	m  map[string]*Result
}

// NewCache returns a cache of at most size entries (rounded up to a multiple of 16), or nil
// when size is 0 (no cache). leeway extends each entry past its exp like the verifier does.
func NewCache(size int, leeway time.Duration) *Cache {
	if size <= 0 {
		return nil
	}
	c := &Cache{seed: maphash.MakeSeed(), perShard: (size + cacheShards - 1) / cacheShards, leeway: leeway}
	for i := range c.shards {
		c.shards[i].m = make(map[string]*Result, c.perShard)
	}
	return c
}

// get returns the result of an earlier verification of tok, if it is still valid at now
// with the key set generation gen.
func (c *Cache) get(tok []byte, now time.Time, gen uint64) *Result {
	s := &c.shards[maphash.Bytes(c.seed, tok)%cacheShards]
	s.mu.RLock()
	r := s.m[string(tok)]
	s.mu.RUnlock()
	return c.valid(r, now, gen)
}

// getString is get for a token held as a string.
func (c *Cache) getString(tok string, now time.Time, gen uint64) *Result {
	s := &c.shards[maphash.String(c.seed, tok)%cacheShards]
	s.mu.RLock()
	r := s.m[tok]
	s.mu.RUnlock()
	return c.valid(r, now, gen)
}

func (c *Cache) valid(r *Result, now time.Time, gen uint64) *Result {
	if r == nil || !c.fresh(r, now, gen) {
		return nil
	}
	return r
}

func (c *Cache) fresh(r *Result, now time.Time, gen uint64) bool {
	if r.KeyGen != 0 && r.KeyGen != gen {
		return false
	}
	return r.Expires.IsZero() || now.Before(r.Expires.Add(c.leeway))
}

// put remembers r for tok. A full shard first drops the stale entries among the first few
// it meets, else one of them.
func (c *Cache) put(tok string, r *Result, now time.Time, gen uint64) {
	s := &c.shards[maphash.String(c.seed, tok)%cacheShards]
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.m) >= c.perShard {
		var victim string
		removed, n := false, 0
		for k, old := range s.m {
			if n == 0 {
				victim = k
			}
			if !c.fresh(old, now, gen) {
				delete(s.m, k)
				removed = true
			}
			if n++; n >= 8 {
				break
			}
		}
		if !removed {
			delete(s.m, victim)
		}
	}
	s.m[tok] = r
}

// Len returns the number of entries.
func (c *Cache) Len() int {
	if c == nil {
		return 0
	}
	n := 0
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.RLock()
		n += len(s.m)
		s.mu.RUnlock()
	}
	return n
}
