package cluster

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"sluice/internal/config"
)

// Local is the node-local part of a node's config file: its path and its top-level
// sections as written (environment references not yet expanded).
type Local struct {
	File     string
	Sections map[string]any
}

// ReadLocal splits a node's config file (already loaded and valid) into its node-local
// part. A file that also has routes, upstreams or shared settings is refused: in cluster
// mode they come from etcd only, so that no node serves something the others do not.
func ReadLocal(file string, data []byte) (*Local, error) {
	var top map[string]any
	if err := yaml.Unmarshal(data, &top); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var errs []error
	for _, k := range slices.Sorted(maps.Keys(top)) {
		if !slices.Contains(NodeLocal, k) && top[k] != nil {
			errs = append(errs, &config.FieldError{File: file, Path: k,
				Msg: "in cluster mode this comes from etcd (sluice config push, or the admin API); a node's file holds only " + strings.Join(NodeLocal, ", ")})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &Local{File: file, Sections: top}, nil
}

// Assemble builds the config a node serves from its local part and the objects of st, and
// loads it with [config.Parse]: the same strict decoding, defaults and validation as a file.
// Problems name the etcd key of the object they are in ("etcd:/sluice/routes/api: upstream:
// unknown upstream \"x\""). prefix is the cluster's key prefix.
func Assemble(local *Local, prefix string, st *State) (*config.Config, error) {
	doc := map[string]any{}
	for k, v := range local.Sections {
		doc[k] = v
	}
	var errs []error
	where := func(rel string) string { return "etcd:" + prefix + "/" + rel }
	for _, rel := range st.Unknown {
		errs = append(errs, &config.FieldError{File: where(rel), Msg: fmt.Sprintf("unknown kind of object: want %s/<id> or %s", strings.Join(Kinds, "/<id>, "), KindSettings)})
	}
	if st.Settings != nil {
		m, err := decodeObject(st.Settings.Value)
		if err != nil {
			errs = append(errs, &config.FieldError{File: where(KindSettings), Msg: err.Error()})
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if slices.Contains(NodeLocal, k) || slices.Contains(Kinds, k) {
				errs = append(errs, &config.FieldError{File: where(KindSettings), Path: k, Msg: "not a shared setting: " + settingHome(k)})
				continue
			}
			doc[k] = escapeEnv(m[k])
		}
	}
	ids := map[string][]string{}
	for _, kind := range Kinds {
		objs := st.Objects[kind]
		ids[kind] = slices.Sorted(maps.Keys(objs))
		list := make([]any, 0, len(objs))
		for _, id := range ids[kind] {
			m, err := decodeObject(objs[id].Value)
			if err != nil {
				errs = append(errs, &config.FieldError{File: where(kind + "/" + id), Msg: err.Error()})
				continue
			}
			switch got, ok := m["id"]; {
			case !ok:
				m["id"] = id
			case got != id:
				errs = append(errs, &config.FieldError{File: where(kind + "/" + id), Path: "id", Msg: fmt.Sprintf("%v differs from the key's id %q", got, id)})
			}
			list = append(list, escapeEnv(m))
		}
		doc[kind] = list
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	data, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("assemble config: %w", err)
	}
	cfg, err := config.Parse(local.File, data)
	if err != nil {
		return nil, remap(err, local.File, where, ids)
	}
	cfg.File = fmt.Sprintf("etcd:%s@%d", prefix, st.Rev)
	return cfg, nil
}

func settingHome(k string) string {
	if slices.Contains(Kinds, k) {
		return "each of " + k + " is a key of its own"
	}
	return "it is node-local, set it in each node's file"
}

var reItem = regexp.MustCompile(`^([a-z_]+)\[(\d+)\]\.?(.*)$`)

// remap points the problems of an assembled config at the etcd key (or the node's file)
// they come from. Lines are dropped: they are lines of the assembled document.
func remap(err error, localFile string, where func(string) string, ids map[string][]string) error {
	var list []error
	if u, ok := err.(interface{ Unwrap() []error }); ok {
		list = u.Unwrap()
	} else {
		list = []error{err}
	}
	out := make([]error, 0, len(list))
	for _, e := range list {
		var fe *config.FieldError
		if !errors.As(e, &fe) {
			out = append(out, e)
			continue
		}
		n := &config.FieldError{File: where(KindSettings), Path: fe.Path, Msg: fe.Msg}
		top, _, _ := strings.Cut(fe.Path, ".")
		top, _, _ = strings.Cut(top, "[")
		switch m := reItem.FindStringSubmatch(fe.Path); {
		case m != nil && ids[m[1]] != nil:
			i, _ := strconv.Atoi(m[2])
			if i < len(ids[m[1]]) {
				n.File, n.Path = where(m[1]+"/"+ids[m[1]][i]), m[3]
			}
		case slices.Contains(NodeLocal, top), fe.Path == "":
			n.File, n.Line = localFile, 0
		}
		out = append(out, n)
	}
	return errors.Join(out...)
}

// escapeEnv doubles "${" in every string of v: objects from etcd are data, and must not
// read the node's environment (a route's set_headers could otherwise send a node's secret
// to a backend). config.Parse turns "$${" back into "${".
func escapeEnv(v any) any {
	switch t := v.(type) {
	case string:
		return strings.ReplaceAll(t, "${", "$${")
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, x := range t {
			out[strings.ReplaceAll(k, "${", "$${")] = escapeEnv(x)
		}
		return out
	case []any:
		out := make([]any, len(t))
		for i, x := range t {
			out[i] = escapeEnv(x)
		}
		return out
	}
	return v
}
