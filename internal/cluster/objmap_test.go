package cluster

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"testing"
)

// TestStateCloneShares: states cloned one from another over random puts and deletes each
// keep exactly their own objects (a model map per state says which), a clone shares the
// shards it did not write with the state it came from, and one Put copies one shard.
func TestStateCloneShares(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	type step struct {
		st    *State
		model map[string]*Object
	}
	cur := step{NewState(), map[string]*Object{}}
	var hist []step
	for i := range 300 {
		next := step{cur.st.Clone(), maps.Clone(cur.model)}
		for range 1 + r.IntN(3) {
			id := fmt.Sprintf("r%d", r.IntN(500))
			if r.IntN(4) == 0 {
				next.st.Put("routes/"+id, nil)
				delete(next.model, id)
				continue
			}
			o := &Object{Value: []byte(fmt.Sprintf(`{"id":%q,"v":%d}`, id, i))}
			next.st.Put("routes/"+id, o)
			next.model[id] = o
		}
		hist = append(hist, cur)
		cur = next
	}
	hist = append(hist, cur)
	for i, h := range hist {
		m := h.st.Objects["routes"]
		if m.Len() != len(h.model) {
			t.Fatalf("state %d: %d objects, want %d", i, m.Len(), len(h.model))
		}
		got := map[string]*Object{}
		for id, o := range m.All() {
			got[id] = o
		}
		if !maps.Equal(got, h.model) {
			t.Fatalf("state %d: objects differ from the model", i)
		}
		for id, o := range h.model {
			if h.st.Get("routes/"+id) != o {
				t.Fatalf("state %d: Get(%s) is not the object put", i, id)
			}
		}
	}
	// One Put on a clone of a state of 2,000 objects (in every shard but by a chance of
	// 1 in 10^12) copies one shard and shares the others.
	a := NewState()
	for i := range 2000 {
		a.Put(fmt.Sprintf("routes/a%d", i), &Object{Value: []byte(`{}`)})
	}
	b := a.Clone()
	b.Put("routes/new", &Object{Value: []byte(`{"id":"new"}`)})
	ma, mb := a.Objects["routes"], b.Objects["routes"]
	copied := 0
	for i := range objectShards {
		if fmt.Sprintf("%p", ma.shards[i]) != fmt.Sprintf("%p", mb.shards[i]) {
			copied++
		}
	}
	if copied != 1 {
		t.Errorf("one Put copied %d shards, want 1", copied)
	}
	if a.Get("routes/new") != nil || b.Get("routes/new") == nil {
		t.Error("the Put on the clone shows in the state it was cloned from, or not in the clone")
	}
}
