package cluster

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// lastGood is the last-good file: the objects of the last state a node applied. It holds
// the etcd part only; the node's own file supplies the node-local part when it is served.
type lastGood struct {
	Prefix   string                                `json:"prefix"`
	Revision int64                                 `json:"revision"`
	Written  time.Time                             `json:"written"`
	Settings json.RawMessage                       `json:"settings,omitempty"`
	Objects  map[string]map[string]json.RawMessage `json:"objects"`
}

// writeLastGood writes st to path atomically: a temp file in the same directory, fsynced,
// renamed over the old one. A crash leaves the old file or the new one, never a torn one.
func writeLastGood(path, prefix string, st *State) error {
	lg := lastGood{Prefix: prefix, Revision: st.Rev, Written: time.Now().UTC(), Objects: map[string]map[string]json.RawMessage{}}
	if st.Settings != nil {
		lg.Settings = rawJSON(st.Settings.Value)
	}
	for kind, m := range st.Objects {
		lg.Objects[kind] = make(map[string]json.RawMessage, m.Len())
		for id, o := range m.All() {
			lg.Objects[kind][id] = rawJSON(o.Value)
		}
	}
	data, err := json.MarshalIndent(lg, "", " ")
	if err != nil {
		return fmt.Errorf("encode last good config: %w", err)
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write last good config: %w", err)
	}
	_, err = f.Write(append(data, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(f.Name(), path)
	}
	if err != nil {
		os.Remove(f.Name())
		return fmt.Errorf("write last good config: %w", err)
	}
	return nil
}

// rawJSON returns v as JSON: values written by Sluice are JSON already; one written by
// hand as YAML is converted (it was valid, or it would not have been applied).
func rawJSON(v []byte) json.RawMessage {
	if json.Valid(v) {
		return v
	}
	c, err := Canonical(v)
	if err != nil {
		return json.RawMessage("null")
	}
	return c
}

// readLastGood reads the state written by writeLastGood.
func readLastGood(path, prefix string) (*State, time.Time, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("read last good config: %w", err)
	}
	var lg lastGood
	if err := json.Unmarshal(data, &lg); err != nil {
		return nil, time.Time{}, fmt.Errorf("read last good config %s: %w", path, err)
	}
	if lg.Prefix != prefix {
		return nil, time.Time{}, fmt.Errorf("last good config %s is of prefix %q, not %q", path, lg.Prefix, prefix)
	}
	st := NewState()
	st.Rev = lg.Revision
	if len(lg.Settings) > 0 {
		st.Settings = &Object{Value: lg.Settings}
	}
	for kind, m := range lg.Objects {
		for id, v := range m {
			st.Put(kind+"/"+id, &Object{Value: v})
		}
	}
	return st, lg.Written, nil
}
