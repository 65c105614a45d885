package cluster

import (
	"hash/maphash"
	"iter"
	"maps"
	"slices"
)

// objectShards is the number of shards of an objectMap: a Put on a state cloned from
// another copies one shard, 1/64 of the kind's objects.
const objectShards = 64

// objectSeed hashes ids to shards (one seed for the process: every map shards alike).
var objectSeed = maphash.MakeSeed()

// objectMap is the objects of one kind by id, copied on write in shards. A state cloned
// from another shares every shard of its kinds; a Put copies only the shard it changes, so
// a watched change costs a few entries, not a copy of every route's (a map of 1,000 routes
// is about 54 KB). The methods accept a nil map (a kind not in the state): it is empty.
type objectMap struct {
	shards [objectShards]map[string]*Object
	owned  uint64 // bit i: shards[i] was made by this map (else it is shared: copied before a write)
	n      int
}

func newObjectMap() *objectMap { return &objectMap{owned: ^uint64(0)} }

// shareClone returns a map with m's objects that shares m's shards until it writes them.
func (m *objectMap) shareClone() *objectMap {
	c := *m
	c.owned = 0
	return &c
}

func shardOf(id string) int { return int(maphash.String(objectSeed, id) % objectShards) }

// Get returns the object with id, or nil.
func (m *objectMap) Get(id string) *Object {
	if m == nil {
		return nil
	}
	return m.shards[shardOf(id)][id]
}

// Len is the number of objects.
func (m *objectMap) Len() int {
	if m == nil {
		return 0
	}
	return m.n
}

// All yields every object with its id, in no order.
func (m *objectMap) All() iter.Seq2[string, *Object] {
	return func(yield func(string, *Object) bool) {
		if m == nil {
			return
		}
		for _, sh := range m.shards {
			for id, o := range sh {
				if !yield(id, o) {
					return
				}
			}
		}
	}
}

// IDs returns the ids, sorted.
func (m *objectMap) IDs() []string {
	out := make([]string, 0, m.Len())
	for id := range m.All() {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// put sets the object with id; a nil o deletes it.
func (m *objectMap) put(id string, o *Object) {
	i := shardOf(id)
	sh := m.shards[i]
	if m.owned&(1<<i) == 0 || sh == nil {
		if sh = maps.Clone(sh); sh == nil {
			sh = map[string]*Object{}
		}
		m.shards[i] = sh
		m.owned |= 1 << i
	}
	_, had := sh[id]
	switch {
	case o == nil && had:
		delete(sh, id)
		m.n--
	case o != nil:
		sh[id] = o
		if !had {
			m.n++
		}
	}
}
