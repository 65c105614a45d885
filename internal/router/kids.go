package router

import (
	"iter"
	"maps"
)

// kids are a node's static children by segment. A node with many children keeps them in
// shards (by a hash of the segment), so that Update, which never changes a node in place,
// copies one shard of a large fan-out (a root with thousands of "/tenantN" children)
// instead of every child. A lookup in a sharded node costs the hash of the segment.
type kids struct {
	m      map[string]*node             // when not sharded
	shards *[kidShards]map[string]*node // when sharded; nil otherwise
	n      int                          // number of children
}

const (
	kidShards = 64
	kidsShard = 128 // a node with more children than this is sharded
)

// shardOf is FNV-1a of seg, reduced to a shard.
func shardOf(seg string) int {
	h := uint32(2166136261)
	for i := 0; i < len(seg); i++ {
		h = (h ^ uint32(seg[i])) * 16777619
	}
	return int(h % kidShards)
}

// get returns the child for seg, nil when there is none.
func (k *kids) get(seg string) *node {
	if k.shards != nil {
		return k.shards[shardOf(seg)][seg]
	}
	return k.m[seg]
}

// put sets the child for seg in place (Compile's build; Update uses with).
func (k *kids) put(seg string, c *node) {
	m := k.mapFor(seg)
	if m == nil {
		m = map[string]*node{}
		k.setMap(seg, m)
	}
	if _, ok := m[seg]; !ok {
		k.n++
	}
	m[seg] = c
	if k.shards == nil && k.n > kidsShard {
		k.shard()
	}
}

// with returns a copy of k with the child for seg set to c (removed when c is nil), sharing
// every shard but the one that changed. k is not modified.
func (k kids) with(seg string, c *node) kids {
	if k.shards != nil {
		sh := *k.shards
		k.shards = &sh
	}
	m := maps.Clone(k.mapFor(seg))
	_, had := m[seg]
	switch {
	case c != nil:
		if m == nil {
			m = map[string]*node{}
		}
		m[seg] = c
		if !had {
			k.n++
		}
	case had:
		delete(m, seg)
		k.n--
	}
	if len(m) == 0 {
		m = nil
	}
	k.setMap(seg, m)
	if k.n == 0 {
		return kids{}
	}
	if k.shards == nil && k.n > kidsShard {
		k.shard()
	}
	return k
}

func (k *kids) mapFor(seg string) map[string]*node {
	if k.shards != nil {
		return k.shards[shardOf(seg)]
	}
	return k.m
}

func (k *kids) setMap(seg string, m map[string]*node) {
	if k.shards != nil {
		k.shards[shardOf(seg)] = m
		return
	}
	k.m = m
}

// shard moves the children into shards.
func (k *kids) shard() {
	k.shards = new([kidShards]map[string]*node)
	for seg, c := range k.m {
		i := shardOf(seg)
		if k.shards[i] == nil {
			k.shards[i] = map[string]*node{}
		}
		k.shards[i][seg] = c
	}
	k.m = nil
}

// all yields every child with its segment, in no order.
func (k *kids) all() iter.Seq2[string, *node] {
	return func(yield func(string, *node) bool) {
		if k.shards == nil {
			for s, c := range k.m {
				if !yield(s, c) {
					return
				}
			}
			return
		}
		for _, m := range k.shards {
			for s, c := range m {
				if !yield(s, c) {
					return
				}
			}
		}
	}
}
