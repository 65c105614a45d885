package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
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
//
// The document is JSON (which is YAML) with one object per line, made by concatenating the
// stored values: an object's line is prepared once (see [Object.line]) and reused by every
// later state, so a change costs one object's preparation plus one Parse, not a re-encoding
// of every object; and a problem's line says which object it is in.
func Assemble(local *Local, prefix string, st *State) (*config.Config, error) {
	var (
		doc   bytes.Buffer
		lines = []string{"", ""} // the key of each line of doc, 1-based; "" for the node's file
		errs  []error
	)
	where := func(rel string) string { return "etcd:" + prefix + "/" + rel }
	for _, rel := range st.Unknown {
		errs = append(errs, &config.FieldError{File: where(rel), Msg: fmt.Sprintf("unknown kind of object: want %s/<id> or %s", strings.Join(Kinds, "/<id>, "), KindSettings)})
	}
	doc.WriteString("{\n")
	member := func(rel, k string, v []byte) {
		fmt.Fprintf(&doc, "%q: %s,\n", k, v)
		lines = append(lines, rel)
	}
	for _, k := range slices.Sorted(maps.Keys(local.Sections)) {
		v, err := json.Marshal(local.Sections[k])
		if err != nil {
			return nil, &config.FieldError{File: local.File, Path: k, Msg: err.Error()}
		}
		member("", k, v)
	}
	if st.Settings != nil {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(jsonOf(st.Settings.Value), &m); err != nil || m == nil {
			errs = append(errs, &config.FieldError{File: where(KindSettings), Msg: "not a JSON object"})
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			if slices.Contains(NodeLocal, k) || slices.Contains(Kinds, k) {
				errs = append(errs, &config.FieldError{File: where(KindSettings), Path: k, Msg: "not a shared setting: " + settingHome(k)})
				continue
			}
			member(KindSettings, k, escapeEnv(compact(m[k])))
		}
	}
	for i, kind := range Kinds {
		fmt.Fprintf(&doc, "%q: [\n", kind)
		lines = append(lines, "")
		ids := st.Objects[kind].IDs()
		for j, id := range ids {
			l, err := st.Objects[kind].Get(id).line(kind, id)
			if err != nil {
				errs = append(errs, &config.FieldError{File: where(kind + "/" + id), Msg: err.Error()})
				continue
			}
			doc.Write(l)
			if j < len(ids)-1 {
				doc.WriteByte(',')
			}
			doc.WriteByte('\n')
			lines = append(lines, kind+"/"+id)
		}
		if i < len(Kinds)-1 {
			doc.WriteString("],\n")
		} else {
			doc.WriteString("]\n")
		}
		lines = append(lines, "")
	}
	doc.WriteString("}\n")
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	cfg, err := config.Parse(local.File, doc.Bytes())
	if err != nil {
		return nil, remap(err, local.File, where, lines)
	}
	cfg.File = fmt.Sprintf("etcd:%s@%d", prefix, st.Rev)
	return cfg, nil
}

// line returns the object as one line of JSON for the assembled document: compact, with
// its id (added when the value leaves it out, refused when it names another), and with
// "${" escaped (see escapeEnv). It is computed once per object.
func (o *Object) line(kind, id string) ([]byte, error) {
	o.once.Do(func() { o.prepared, o.prepErr = prepare(o.Value, IDField(kind), id) })
	return o.prepared, o.prepErr
}

func prepare(v []byte, field, id string) ([]byte, error) {
	v = jsonOf(v)
	var head map[string]json.RawMessage
	if err := json.Unmarshal(v, &head); err != nil {
		return nil, fmt.Errorf("not a JSON object: %w", err)
	}
	var got any
	if raw, ok := head[field]; ok {
		json.Unmarshal(raw, &got)
	}
	v = compact(v)
	switch {
	case got == nil:
		if string(v) == "{}" {
			v = []byte(`{"` + field + `":` + strconv.Quote(id) + `}`)
		} else {
			v = append([]byte(`{"`+field+`":`+strconv.Quote(id)+`,`), v[1:]...)
		}
	case got != id:
		return nil, &config.FieldError{Path: field, Msg: fmt.Sprintf("%v differs from the key's id %q", got, id)}
	}
	return escapeEnv(v), nil
}

// jsonOf returns v as JSON: values are stored as JSON, but one written by hand as YAML is
// read too.
func jsonOf(v []byte) []byte {
	if json.Valid(v) {
		return v
	}
	if c, err := Canonical(v); err == nil {
		return c
	}
	return v
}

func compact(v []byte) []byte {
	var b bytes.Buffer
	if err := json.Compact(&b, v); err != nil {
		return v
	}
	return b.Bytes()
}

func settingHome(k string) string {
	if slices.Contains(Kinds, k) {
		return "each of " + k + " is a key of its own"
	}
	return "it is node-local, set it in each node's file"
}

// remap points the problems of an assembled config at the etcd key (or the node's file)
// they come from, by their line in the assembled document (one object per line). Lines
// are dropped: they are lines of the assembled document.
func remap(err error, localFile string, where func(string) string, lines []string) error {
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
		n := &config.FieldError{File: localFile, Path: fe.Path, Msg: fe.Msg}
		if fe.Line > 0 && fe.Line < len(lines) && lines[fe.Line] != "" {
			rel := lines[fe.Line]
			n.File = where(rel)
			if _, rest, ok := strings.Cut(fe.Path, "]"); ok && rel != KindSettings {
				n.Path = strings.TrimPrefix(rest, ".")
			}
		}
		out = append(out, n)
	}
	return errors.Join(out...)
}

// escapeEnv doubles "${" in a JSON value: objects from etcd are data, and must not read the
// node's environment (a route's set_headers could otherwise send a node's secret to a
// backend). config.Parse turns "$${" back into "${".
func escapeEnv(v []byte) []byte {
	return bytes.ReplaceAll(v, []byte("${"), []byte("$${"))
}
