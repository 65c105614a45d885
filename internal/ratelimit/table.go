package ratelimit

import (
	"hash/maphash"
	"sync"
)

// The key table: a fixed number of shards, each a mutex, a map from key to slot and a
// slice of slots that never grows past the shard's cap. A decision locks one shard for a
// few nanoseconds of arithmetic; with 64 shards, 8 clients on different keys rarely meet.
// A lookup of an existing key hashes the bytes (maphash, no allocation) and indexes the map
// with string(key), which Go does not allocate for; only a new key allocates its string.
//
// At the cap a new key takes the slot of an old one: the clock hand looks at up to
// evictScan slots and takes the first idle one (its state says it no longer limits
// anything, so forgetting it loses nothing), else the least recently used one it saw.
// Forgetting a busy key gives that key a fresh allowance: rate limiters accept this (an
// attacker who floods the table with keys can reset other keys' counts, which
// Stats.Evictions shows, but never makes a legitimate key be refused). Concurrency slots
// with requests in flight are never taken (their counts would go wrong); when every slot
// seen is busy, insert fails and the caller refuses the request.

const (
	maxShards = 64
	evictScan = 8
)

// cell is a key's state. Its meaning depends on the algorithm (see the decide functions):
// gcra: a = theoretical arrival time; windows: a = window index, b = count in it, c = count
// in the window before; concurrency: b = requests in flight.
type cell struct {
	a, b, c int64
}

type slot struct {
	key  string
	last int64 // time of the last decision, unix ns
	cell cell
}

type shard struct {
	mu    sync.Mutex
	idx   map[string]int32
	slots []slot
	hand  int
	_     [40]byte // keep neighbouring shards' mutexes off one cache line
}

// idleFunc reports whether a cell no longer limits anything at now (it can be forgotten).
// strict: a cell that is not idle must never be taken.
type idleFunc func(c *cell, now int64) bool

type table struct {
	seed      maphash.Seed
	mask      uint64
	shardCap  int
	shards    []shard
	idle      idleFunc
	strict    bool
	evictions counter
}

// newTable returns a table holding at most about maxKeys keys (rounded up to a multiple
// of the shard count). Small tables have one shard, so their cap is exact.
func newTable(maxKeys int, idle idleFunc, strict bool) *table {
	n := 1
	for n < maxShards && n*2*64 <= maxKeys {
		n *= 2
	}
	t := &table{seed: maphash.MakeSeed(), mask: uint64(n - 1), shardCap: (maxKeys + n - 1) / n,
		shards: make([]shard, n), idle: idle, strict: strict}
	for i := range t.shards {
		t.shards[i].idx = make(map[string]int32)
	}
	return t
}

// lock finds key's shard and slot, inserting the key if it is new, and returns the shard
// locked (the caller unlocks it), its index, and the slot's index, or -1 when the shard is
// full of slots that may not be taken (strict tables only).
func (t *table) lock(key []byte, now int64) (sh *shard, si int, i int32) {
	si = int(maphash.Bytes(t.seed, key) & t.mask)
	sh = &t.shards[si]
	return sh, si, t.find(sh, key, now)
}

// find returns key's slot in the locked shard sh, inserting it, or -1.
func (t *table) find(sh *shard, key []byte, now int64) int32 {
	sh.mu.Lock()
	if i, ok := sh.idx[string(key)]; ok {
		sh.slots[i].last = now
		return i
	}
	if len(sh.slots) < t.shardCap {
		i := int32(len(sh.slots))
		sh.slots = append(sh.slots, slot{key: string(key), last: now})
		sh.idx[sh.slots[i].key] = i
		return i
	}
	i := t.victim(sh, now)
	if i < 0 {
		return -1
	}
	t.evictions.add(1)
	s := &sh.slots[i]
	delete(sh.idx, s.key)
	*s = slot{key: string(key), last: now}
	sh.idx[s.key] = int32(i)
	return int32(i)
}

// victim picks the slot a new key takes in a full shard, or -1.
func (t *table) victim(sh *shard, now int64) int {
	best := -1
	n := len(sh.slots)
	scan := evictScan
	if t.strict {
		scan = n // a concurrency table looks at every slot before it refuses
	}
	for k := 0; k < scan && k < n; k++ {
		i := sh.hand
		sh.hand++
		if sh.hand == n {
			sh.hand = 0
		}
		s := &sh.slots[i]
		if t.idle(&s.cell, now) {
			return i
		}
		if !t.strict && (best < 0 || s.last < sh.slots[best].last) {
			best = i
		}
	}
	return best
}

// len returns the number of keys held.
func (t *table) len() int {
	n := 0
	for i := range t.shards {
		sh := &t.shards[i]
		sh.mu.Lock()
		n += len(sh.slots)
		sh.mu.Unlock()
	}
	return n
}
