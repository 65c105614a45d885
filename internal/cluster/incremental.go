package cluster

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"

	"sluice/internal/config"
)

// maxIncremental is the most objects a change may touch to be validated object by object;
// a larger one (a push of many objects) is assembled and validated whole, which costs about
// the same by then.
const maxIncremental = 64

// applied is the last state a node applied, with the config built from it and the index
// that checks a change against it.
type applied struct {
	st  *State
	cfg *config.Config
	idx *config.RouteIndex
}

// build returns the config for st and the function that applies it (and, once the gateway
// took it, records it as the last applied state).
//
// When st differs from the last applied state only in some upstreams and routes (a watch
// event), the changed objects are parsed alone ([config.ParseObjects]), checked against the
// rest through the route index ([config.RouteIndex.Check]), and put into a copy of the last
// config: the cost depends on the change, not on the number of objects. Anything else (a
// snapshot, a change of the shared settings, an unknown key, a large change, and every
// change that fails a check) is assembled and validated whole by [Assemble], so an invalid
// change is refused with exactly the errors a file would give.
func (n *Node) build(st *State, whole bool) (*config.Config, func() error, error) {
	if p := n.applied; !whole && p != nil {
		if cfg, ch, ok := incremental(n.opt.Local, n.prefix, p, st); ok {
			return cfg, func() error {
				var err error
				if n.opt.ApplyChange != nil {
					err = n.opt.ApplyChange(p.cfg, cfg, ch)
				} else {
					err = n.opt.Apply(cfg)
				}
				if err != nil {
					return err
				}
				p.idx.Commit(ch)
				n.applied = &applied{st: st, cfg: cfg, idx: p.idx}
				n.incremental.Add(1)
				return nil
			}, nil
		}
	}
	cfg, err := Assemble(n.opt.Local, n.prefix, st)
	if err != nil {
		return nil, nil, err
	}
	return cfg, func() error {
		if err := n.opt.Apply(cfg); err != nil {
			return err
		}
		n.applied = &applied{st: st, cfg: cfg, idx: config.NewRouteIndex(cfg)}
		return nil
	}, nil
}

// incremental builds st's config from p's, or says it cannot (ok false).
func incremental(local *Local, prefix string, p *applied, st *State) (*config.Config, config.Change, bool) {
	var ch config.Change
	if st.Settings != p.st.Settings || len(st.Unknown) > 0 || len(p.st.Unknown) > 0 {
		return nil, ch, false
	}
	changed, removed, ok := diff(p.st, st)
	if !ok {
		return nil, ch, false
	}
	// The changed objects as a config document of their own, one object per line as in
	// Assemble (and in the same id order, so a list's order matches the whole document's).
	var doc bytes.Buffer
	h := sha256.New()
	h.Write([]byte(p.cfg.Hash))
	doc.WriteString("{\n")
	for i, kind := range []string{"upstreams", "routes"} {
		ids := slices.Sorted(slices.Values(changed[kind]))
		changed[kind] = ids
		fmt.Fprintf(&doc, "%q: [\n", kind)
		for j, id := range ids {
			l, err := st.Objects[kind].Get(id).line(kind, id)
			if err != nil {
				return nil, ch, false
			}
			doc.Write(l)
			if j < len(ids)-1 {
				doc.WriteByte(',')
			}
			doc.WriteByte('\n')
			fmt.Fprintf(h, "\x00%s/%s\x00%s", kind, id, l)
		}
		doc.WriteString("]")
		if i == 0 {
			doc.WriteByte(',')
		}
		doc.WriteByte('\n')
		for _, id := range slices.Sorted(slices.Values(removed[kind])) {
			fmt.Fprintf(h, "\x00-%s/%s", kind, id)
		}
	}
	doc.WriteString("}\n")
	objs, err := config.ParseObjects(local.File, doc.Bytes())
	if err != nil {
		return nil, ch, false
	}
	next := *p.cfg
	next.Upstreams = merge(p.cfg.Upstreams, objs.Upstreams, removed["upstreams"], func(u config.Upstream) string { return u.ID })
	next.Routes = merge(p.cfg.Routes, objs.Routes, removed["routes"], func(r *config.Route) string { return r.ID })
	ch = config.Change{Upstreams: objs.Upstreams, Routes: objs.Routes, RemovedRoutes: removed["routes"], RemovedUpstreams: removed["upstreams"]}
	if !p.idx.Check(&next, ch) {
		return nil, ch, false
	}
	next.File = fmt.Sprintf("etcd:%s@%d", prefix, st.Rev)
	next.Hash = hex.EncodeToString(h.Sum(nil))
	return &next, ch, true
}

// diff returns the ids of the upstreams and routes st adds or replaces and those it removes
// from before, by kind; ok is false when other objects changed or the change is too large
// to be applied object by object. When st was cloned from before it looks only at the keys
// put since (State.changes); otherwise it compares every object.
func diff(before, st *State) (changed, removed map[string][]string, ok bool) {
	changed, removed = map[string][]string{}, map[string][]string{}
	count := 0
	note := func(kind, id string) bool {
		now, was := st.Objects[kind].Get(id), before.Objects[kind].Get(id)
		switch {
		case now == was:
			return true
		case kind != "upstreams" && kind != "routes":
			return false // consumers: validated whole (plugins refer to them)
		case now == nil:
			removed[kind] = append(removed[kind], id)
		default:
			changed[kind] = append(changed[kind], id)
		}
		count++
		return count <= maxIncremental
	}
	if rels, ok := st.changes(before); ok {
		seen := make(map[string]bool, len(rels))
		for _, rel := range rels {
			kind, id, _ := strings.Cut(rel, "/")
			if seen[rel] || rel == keyFence {
				continue
			}
			seen[rel] = true
			if _, known := st.Objects[kind]; !known || !note(kind, id) {
				return nil, nil, false
			}
		}
		return changed, removed, true
	}
	for _, kind := range Kinds {
		now, was := st.Objects[kind], before.Objects[kind]
		for id := range now.All() {
			if !note(kind, id) {
				return nil, nil, false
			}
		}
		for id := range was.All() {
			if now.Get(id) == nil && !note(kind, id) {
				return nil, nil, false
			}
		}
	}
	return changed, removed, true
}

// merge returns list (sorted by id, as Assemble makes it) with the objects of put added or
// replaced and the ids in del removed, still sorted by id. list is not modified.
func merge[T any](list, put []T, del []string, id func(T) string) []T {
	if len(put) == 0 && len(del) == 0 {
		return list
	}
	out := slices.Clone(list)
	find := func(k string) (int, bool) {
		return slices.BinarySearchFunc(out, k, func(v T, k string) int { return cmp.Compare(id(v), k) })
	}
	for _, k := range del {
		if i, ok := find(k); ok {
			out = slices.Delete(out, i, i+1)
		}
	}
	for _, v := range put {
		if i, ok := find(id(v)); ok {
			out[i] = v
		} else {
			out = slices.Insert(out, i, v)
		}
	}
	return out
}
