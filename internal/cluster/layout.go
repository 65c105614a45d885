package cluster

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"go.yaml.in/yaml/v3"
)

// Kinds are the config lists stored one key per object, in the order they are assembled.
// Each object has a field that names its key (IDField). Adding a kind (plugin configs) is
// one more entry here.
var Kinds = []string{"upstreams", "routes", "consumers"}

// IDField is the field of an object of kind that names its key: "name" for consumers (as
// in a config file), "id" for the others.
func IDField(kind string) string {
	if kind == "consumers" {
		return "name"
	}
	return "id"
}

// KindSettings is the key of the shared top-level settings.
const KindSettings = "settings"

// keyFence is the key every API and CLI write puts, so that writes can be guarded by one
// revision (see the package doc).
const keyFence = "fence"

// NodeLocal are the top-level config sections that stay in each node's file and may not be
// written to etcd.
var NodeLocal = []string{"listeners", "admin", "log", "cluster"}

// Object is one stored object: its JSON value and its mod revision (its ETag).
type Object struct {
	Value  []byte
	ModRev int64

	// The object's line of the assembled document (assemble.go), prepared once.
	once     sync.Once
	prepared []byte
	prepErr  error
}

// State is every object under a prefix at one revision.
type State struct {
	Rev      int64
	FenceRev int64 // mod revision of the fence key; 0 when it does not exist
	Settings *Object
	// Objects are by kind, then by id (objmap.go: shared with the state cloned from, and
	// copied on write in shards).
	Objects map[string]*objectMap
	// Unknown are keys under the prefix that are not objects of a known kind; a state with
	// any is refused (a newer Sluice may have written them).
	Unknown []string

	// parent is the state s was cloned from, touched the keys Put since (changes); owned
	// are the kinds whose maps s copied from parent's (nil: s owns every map).
	parent  *State
	touched []string
	owned   map[string]bool
}

// NewState returns an empty state.
func NewState() *State {
	s := &State{Objects: map[string]*objectMap{}}
	for _, k := range Kinds {
		s.Objects[k] = newObjectMap()
	}
	return s
}

// Clone returns a copy of s that can be changed without changing s (values are shared:
// they are never modified in place). The copy shares s's kind maps until Put changes one
// (and then copies only the shard it changes), and records the keys Put changes from s
// (see changes).
func (s *State) Clone() *State {
	c := &State{Rev: s.Rev, FenceRev: s.FenceRev, Settings: s.Settings, Objects: maps.Clone(s.Objects),
		parent: s, owned: map[string]bool{}}
	c.Unknown = slices.Clone(s.Unknown)
	return c
}

// changes returns the keys (relative to the prefix) put since s was cloned from parent;
// ok is false when s was not cloned from parent.
func (s *State) changes(parent *State) (rels []string, ok bool) {
	if s.parent != parent || parent == nil {
		return nil, false
	}
	return s.touched, true
}

// Put sets the object at rel (a key relative to the prefix, such as "routes/api"); a nil
// value deletes it.
func (s *State) Put(rel string, o *Object) {
	s.touched = append(s.touched, rel)
	kind, id, _ := strings.Cut(rel, "/")
	switch {
	case rel == KindSettings:
		s.Settings = o
		return
	case rel == keyFence:
		if o == nil {
			s.FenceRev = 0
		} else {
			s.FenceRev = o.ModRev
		}
		return
	}
	m, ok := s.Objects[kind]
	if !ok || id == "" || strings.Contains(id, "/") {
		s.Unknown = slices.DeleteFunc(s.Unknown, func(k string) bool { return k == rel })
		if o != nil {
			s.Unknown = append(s.Unknown, rel)
		}
		return
	}
	if s.owned != nil && !s.owned[kind] {
		m = m.shareClone() // shared with the state cloned from: its shards are copied on write
		s.Objects[kind], s.owned[kind] = m, true
	}
	m.put(id, o)
}

// Get returns the object at rel, or nil.
func (s *State) Get(rel string) *Object {
	if rel == KindSettings {
		return s.Settings
	}
	kind, id, _ := strings.Cut(rel, "/")
	return s.Objects[kind].Get(id)
}

// Len is the number of objects, settings included.
func (s *State) Len() int {
	n := 0
	if s.Settings != nil {
		n++
	}
	for _, m := range s.Objects {
		n += m.Len()
	}
	return n
}

// Rels returns the keys of every object, relative to the prefix, sorted.
func (s *State) Rels() []string {
	var out []string
	if s.Settings != nil {
		out = append(out, KindSettings)
	}
	for _, k := range Kinds {
		for id := range s.Objects[k].All() {
			out = append(out, k+"/"+id)
		}
	}
	slices.Sort(out)
	return out
}

// Canonical returns v (JSON or YAML text of one object) as canonical JSON: sorted keys, no
// spacing. Values that are not a mapping are refused.
func Canonical(v []byte) ([]byte, error) {
	var m map[string]any
	if err := yaml.Unmarshal(v, &m); err != nil {
		return nil, fmt.Errorf("not a JSON or YAML object: %w", err)
	}
	if m == nil {
		return nil, fmt.Errorf("not a JSON or YAML object: empty")
	}
	return canonicalJSON(m)
}

func canonicalJSON(v any) ([]byte, error) {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, fmt.Errorf("encode JSON: %w", err)
	}
	return bytes.TrimRight(b.Bytes(), "\n"), nil
}

// decodeObject decodes a stored value as a generic mapping.
func decodeObject(v []byte) (map[string]any, error) {
	var m map[string]any
	if err := yaml.Unmarshal(v, &m); err != nil {
		return nil, err
	}
	if m == nil {
		return nil, fmt.Errorf("empty value: want a JSON object")
	}
	return m, nil
}
