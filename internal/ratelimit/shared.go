package ratelimit

import "sync"

// Shared keeps local limiters across config generations: a reload builds new plugin
// instances, and an instance whose limit is unchanged (same id, same rule or maximum, same
// key cap) gets the limiter the previous generation used, with its counts, its keys and
// its requests in flight. Without it every reload would hand every key a fresh allowance
// and let limit-conn admit a second max while the old generation's requests finish.
type Shared struct {
	mu sync.Mutex
	m  map[string]*sharedEntry
}

type sharedEntry struct {
	params any // what must match for reuse
	v      any // *Local or *Concurrency
	refs   int
}

// Local returns the local limiter for id with rule and maxKeys, shared with the previous
// holder of id when both match, and the release to call when the caller's generation is
// retired.
func (s *Shared) Local(id string, rule Rule, maxKeys int) (*Local, func()) {
	v, release := s.get(id, struct {
		r Rule
		k int
	}{rule, maxKeys}, func() any { return NewLocal(rule, maxKeys) })
	return v.(*Local), release
}

// Concurrency is Local for concurrency limiters.
func (s *Shared) Concurrency(id string, max int64, maxKeys int) (*Concurrency, func()) {
	v, release := s.get(id, [2]int64{max, int64(maxKeys)}, func() any { return NewConcurrency(max, maxKeys) })
	return v.(*Concurrency), release
}

func (s *Shared) get(id string, params any, mk func() any) (any, func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil {
		s.m = map[string]*sharedEntry{}
	}
	e := s.m[id]
	if e == nil || e.params != params {
		e = &sharedEntry{params: params, v: mk()}
		s.m[id] = e // a changed limit replaces the entry; its old holders keep theirs
	}
	e.refs++
	var once sync.Once
	return e.v, func() {
		once.Do(func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			if e.refs--; e.refs == 0 && s.m[id] == e {
				delete(s.m, id)
			}
		})
	}
}
