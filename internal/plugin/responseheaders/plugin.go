// Package responseheaders is the response-headers plugin: it sets, adds and removes fields
// of the responses a route sends (security headers, Cache-Control, hiding Server).
//
// Set and add go on every response of the route that the chain makes or passes: the
// upstream's, and the answers of plugins that run after it (a 401, a 429, a redirect, a
// static response). The plugin adds them in the request phase, with the chain's
// AddResponseField, which appends them to whatever response goes out; on an upstream
// response its response phase first deletes the upstream's fields named in set and
// remove. So an upstream's "Server" is removed, and an upstream's "Cache-Control" is
// replaced by the one set. It runs in the access stage, so that it comes before any
// plugin that may refuse the request (write it first in the list to cover ip-restriction's
// 403 too). Values are fixed strings: the request side (routes[].rewrite.set_headers) has
// no variables either.
package responseheaders

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"sluice/internal/plugin"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StageAccess, New: New})
}

// Name is the plugin's name in configs.
const Name = "response-headers"

// field is one header field to add.
type field struct{ name, value string }

// ResponseHeaders is one response-headers instance.
type ResponseHeaders struct {
	add []field  // set, then add, each sorted by name: added to every response
	del []string // set and remove: deleted from the upstream's head first
}

// New builds a response-headers instance.
func New(b *plugin.Build) (any, error) {
	var c Config
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	var errs []error
	if len(c.Set)+len(c.Add)+len(c.Remove) == 0 {
		errs = append(errs, b.Errorf("", "write at least one of set, add and remove"))
	}
	p := &ResponseHeaders{}
	seen := map[string]string{} // lower-case name of set and remove -> where
	note := func(where, name string) {
		if prev, dup := seen[strings.ToLower(name)]; dup {
			errs = append(errs, b.Errorf(where, "%q is already in %s (names are case-insensitive)", name, prev))
		}
		seen[strings.ToLower(name)] = where
	}
	for _, list := range []struct {
		key string
		m   map[string]string
	}{{"set", c.Set}, {"add", c.Add}} {
		for _, name := range sortedKeys(list.m) {
			where := list.key + "." + name
			if err := plugin.CheckField(name, list.m[name]); err != nil {
				errs = append(errs, b.Errorf(where, "%v", err))
				continue
			}
			if list.key == "set" {
				note(where, name)
				p.del = append(p.del, name)
			} else if prev := seen[strings.ToLower(name)]; strings.HasPrefix(prev, "set.") {
				errs = append(errs, b.Errorf(where, "%q is already in %s: set replaces, add appends; write it once", name, prev))
			}
			p.add = append(p.add, field{name, list.m[name]})
		}
	}
	for i, name := range c.Remove {
		where := fmt.Sprintf("remove[%d]", i)
		if err := plugin.CheckField(name, ""); err != nil {
			errs = append(errs, b.Errorf(where, "%v", err))
			continue
		}
		note(where, name)
		p.del = append(p.del, name)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// Request adds the set and add fields to whatever response the request gets.
func (p *ResponseHeaders) Request(r *plugin.Request) error {
	for _, f := range p.add {
		r.AddResponseField(f.name, f.value)
	}
	return nil
}

// Response deletes the upstream's fields named in set and remove; the set ones come back
// with their configured values, appended after this phase.
func (p *ResponseHeaders) Response(_ *plugin.Request, _ int, h *plugin.Header) {
	for _, n := range p.del {
		h.Del(n)
	}
}

var (
	_ plugin.RequestFilter  = (*ResponseHeaders)(nil)
	_ plugin.ResponseFilter = (*ResponseHeaders)(nil)
)
