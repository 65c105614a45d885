package cluster

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.yaml.in/yaml/v3"

	"sluice/internal/config"
)

// `sluice config push|pull|diff`: a config file as a set of objects, compared with etcd.

// FileState splits a config file into the objects it stands for (its shared settings and
// one object per route and upstream, as canonical JSON) and the node-local part used to
// validate them: the file's own listeners, admin and log, or a stand-in listener when it has
// none (a file made to be pushed need not say where a node listens).
func FileState(file string, data []byte) (*State, *Local, error) {
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", file, err)
	}
	st := NewState()
	local := &Local{File: file, Sections: map[string]any{}}
	settings := map[string]any{}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(top)) {
		v := top[k]
		switch {
		case slices.Contains(NodeLocal, k):
			if k != "cluster" {
				local.Sections[k] = v
			}
		case slices.Contains(Kinds, k):
			list, _ := v.([]any)
			for i, item := range list {
				m, _ := item.(map[string]any)
				id, _ := m[IDField(k)].(string)
				if id == "" {
					errs = append(errs, &config.FieldError{File: file, Path: fmt.Sprintf("%s[%d].%s", k, i, IDField(k)), Msg: "required: it names the object's key in etcd"})
					continue
				}
				b, err := canonicalJSON(m)
				if err != nil {
					return nil, nil, err
				}
				st.Put(k+"/"+id, &Object{Value: b})
			}
		default:
			settings[k] = v
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	if len(settings) > 0 {
		b, err := canonicalJSON(settings)
		if err != nil {
			return nil, nil, err
		}
		st.Settings = &Object{Value: b}
	}
	if local.Sections["listeners"] == nil {
		local.Sections["listeners"] = []any{map[string]any{"address": "127.0.0.1:0"}}
	}
	local.Sections["admin"] = map[string]any{"enabled": false}
	return st, local, nil
}

// Change is one object that push writes or deletes.
type Change struct {
	Rel string // key relative to the prefix
	Op  string // create, replace, delete
	Old *Object
	New []byte // nil for delete
}

// Plan lists the changes that make cur equal to want, sorted by key. Values are compared in
// canonical form, so a value written by hand in another layout is not a change.
func Plan(cur, want *State) []Change {
	var out []Change
	for _, rel := range want.Rels() {
		w, c := want.Get(rel), cur.Get(rel)
		switch {
		case c == nil:
			out = append(out, Change{Rel: rel, Op: "create", New: w.Value})
		case !sameValue(c.Value, w.Value):
			out = append(out, Change{Rel: rel, Op: "replace", Old: c, New: w.Value})
		}
	}
	for _, rel := range cur.Rels() {
		if want.Get(rel) == nil {
			out = append(out, Change{Rel: rel, Op: "delete", Old: cur.Get(rel)})
		}
	}
	slices.SortFunc(out, func(a, b Change) int { return strings.Compare(a.Rel, b.Rel) })
	return out
}

func sameValue(a, b []byte) bool {
	ca, err := Canonical(a)
	return err == nil && string(ca) == string(b)
}

// ErrConflict is returned by [Push] when etcd changed after the state it planned from.
var ErrConflict = errors.New("the config in etcd changed while pushing; run push again")

// fenceValue is what a write puts in the fence key: who made the last write and what it was,
// so `etcdctl get <prefix>/fence` answers "who changed this last".
func fenceValue(who, op, what string) string {
	b, _ := canonicalJSON(map[string]any{"who": who, "op": op, "what": what, "time": time.Now().UTC().Format(time.RFC3339)})
	return string(b)
}

// Push writes changes in one transaction, guarded by the fence and by the mod revision of
// every changed key as read in cur. It returns the new revision. etcd bounds the operations
// of a transaction (--max-txn-ops, default 128): a push of more changes than that fails as
// a whole.
func Push(ctx context.Context, cli *clientv3.Client, prefix, who string, cur *State, changes []Change) (int64, error) {
	fence := prefix + "/" + keyFence
	cmps := []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(fence), "=", cur.FenceRev)}
	var ops []clientv3.Op
	for _, c := range changes {
		key := prefix + "/" + c.Rel
		var rev int64
		if c.Old != nil {
			rev = c.Old.ModRev
		}
		cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(key), "=", rev))
		if c.New == nil {
			ops = append(ops, clientv3.OpDelete(key))
		} else {
			ops = append(ops, clientv3.OpPut(key, string(c.New)))
		}
	}
	ops = append(ops, clientv3.OpPut(fence, fenceValue(who, "push", fmt.Sprintf("%d changes", len(changes)))))
	resp, err := cli.Txn(ctx).If(cmps...).Then(ops...).Commit()
	if err != nil {
		return 0, fmt.Errorf("push to etcd: %w", err)
	}
	if !resp.Succeeded {
		return 0, ErrConflict
	}
	return resp.Header.Revision, nil
}

// PullYAML renders st as a config file's YAML (shared settings, upstreams, routes; no
// node-local sections). Secrets (consumers' credentials, secret fields of plugin configs)
// are redacted as in /admin/config unless secrets is true; a file with redacted values is
// refused by push (CheckNotRedacted).
func PullYAML(st *State, secrets bool) ([]byte, error) {
	doc := map[string]any{}
	if st.Settings != nil {
		v := st.Settings.Value
		if !secrets {
			v = redactObject(KindSettings, jsonOf(v))
		}
		m, err := decodeObject(v)
		if err != nil {
			return nil, fmt.Errorf("settings: %w", err)
		}
		maps.Copy(doc, m)
	}
	for _, kind := range Kinds {
		var list []any
		for _, id := range st.Objects[kind].IDs() {
			v := st.Objects[kind].Get(id).Value
			if !secrets {
				v = redactObject(kind+"/"+id, jsonOf(v))
			}
			m, err := decodeObject(v)
			if err != nil {
				return nil, fmt.Errorf("%s/%s: %w", kind, id, err)
			}
			list = append(list, m)
		}
		if list != nil {
			doc[kind] = list
		}
	}
	return yaml.Marshal(doc)
}
