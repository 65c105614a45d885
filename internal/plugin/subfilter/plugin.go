// Package subfilter is the sub-filter plugin: it replaces strings in the upstream's response
// bodies of the media types it is given, as they stream (like nginx's sub_filter), e.g. an
// internal host name in HTML or JSON links. It holds back at most the longest search
// string less one byte between two reads, so a match that straddles two upstream reads is
// found and the body is never buffered whole.
package subfilter

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"

	"sluice/internal/plugin"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StageTransform, New: New})
}

// Name is the plugin's name in configs.
const Name = "sub-filter"

// maxFrom bounds a search string: what a response may hold back between two reads.
const maxFrom = 1024

// Config is sub-filter's config.
type Config struct {
	// Replace lists the substitutions, at least one. At each position of the body the first
	// rule (in this order) whose From matches wins; replaced text is not searched again.
	Replace []Rule `yaml:"replace"`
	// Types lists the media types (Content-Type without parameters, case-insensitive)
	// whose bodies are rewritten; "text/*" covers a whole type, "*" every response.
	// Omitted or empty: text/html.
	Types []string `yaml:"types"`
}

// Rule is one substitution.
type Rule struct {
	// From is the exact bytes searched for (case-sensitive), 1 to 1024 bytes. Required.
	From string `yaml:"from"`
	// To replaces each occurrence; empty deletes it.
	To string `yaml:"to"`
}

// SubFilter is one sub-filter instance.
type SubFilter struct {
	slot    plugin.Slot
	from    [][]byte
	to      [][]byte
	first   [256]bool // first bytes of the From strings
	types   []string  // lower case; "text/*" or "*" allowed
	bodies  atomic.Int64
	matches atomic.Int64
}

// New builds a sub-filter instance.
func New(b *plugin.Build) (any, error) {
	var c Config
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	var errs []error
	if len(c.Replace) == 0 {
		errs = append(errs, b.Errorf("replace", "write at least one rule (from, to)"))
	}
	p := &SubFilter{slot: b.Slot()}
	for i, r := range c.Replace {
		switch {
		case r.From == "":
			errs = append(errs, b.Errorf(fmt.Sprintf("replace[%d].from", i), "must not be empty"))
			continue
		case len(r.From) > maxFrom:
			errs = append(errs, b.Errorf(fmt.Sprintf("replace[%d].from", i), "is %d bytes, at most %d", len(r.From), maxFrom))
			continue
		}
		p.from = append(p.from, []byte(r.From))
		p.to = append(p.to, []byte(r.To))
		p.first[r.From[0]] = true
	}
	if len(c.Types) == 0 {
		c.Types = []string{"text/html"}
	}
	for i, t := range c.Types {
		t = strings.ToLower(strings.TrimSpace(t))
		if t != "*" && (strings.Count(t, "/") != 1 || strings.HasPrefix(t, "/") || strings.HasSuffix(t, "/") || strings.ContainsAny(t, " ;,")) {
			errs = append(errs, b.Errorf(fmt.Sprintf("types[%d]", i), "%q is not a media type (type/subtype, type/* or *)", c.Types[i]))
			continue
		}
		p.types = append(p.types, t)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// Request asks the upstream for an unencoded body: a gzip body cannot be searched.
func (p *SubFilter) Request(r *plugin.Request) error {
	r.Header().Del("Accept-Encoding")
	return nil
}

// state is one response's: the bytes held back (a possible match's start) and scratch.
type state struct {
	carry []byte
	work  []byte
}

var states = sync.Pool{New: func() any { return &state{carry: make([]byte, 0, 64)} }}

// BodyStart turns the filter on for a response of one of the types, not encoded (an upstream
// may compress even unasked) and not a range (206). The ETag becomes weak: the bytes change.
func (p *SubFilter) BodyStart(r *plugin.Request, status int, h *plugin.Header) bool {
	if status == 206 || !p.wants(h) {
		return false
	}
	if v, ok := h.Get("Content-Encoding"); ok && !strings.EqualFold(string(bytes.TrimSpace(v)), "identity") {
		return false
	}
	if v, ok := h.Get("ETag"); ok && len(v) > 0 && v[0] == '"' {
		h.Set("ETag", "W/"+string(v))
	}
	st := states.Get().(*state)
	st.carry = st.carry[:0]
	r.Slot(p.slot).V = st
	p.bodies.Add(1)
	return true
}

// wants reports whether the response's Content-Type is one of the types.
func (p *SubFilter) wants(h *plugin.Header) bool {
	v, _ := h.Get("Content-Type")
	if i := bytes.IndexByte(v, ';'); i >= 0 {
		v = v[:i]
	}
	v = bytes.TrimSpace(v)
	for _, t := range p.types {
		switch {
		case t == "*":
			return true
		case strings.HasSuffix(t, "/*"):
			if len(v) > len(t)-1 && strings.EqualFold(string(v[:len(t)-1]), t[:len(t)-1]) {
				return true
			}
		case strings.EqualFold(string(v), t):
			return true
		}
	}
	return false
}

// Body replaces the matches in the held-back bytes and p, holding back a tail that may
// start a match completed by the next piece.
func (p *SubFilter) Body(r *plugin.Request, dst, in []byte, end bool) []byte {
	st := r.Slot(p.slot).V.(*state)
	data := in
	if len(st.carry) > 0 {
		st.work = append(append(st.work[:0], st.carry...), in...)
		data = st.work
	}
	out, rest, n := p.rewrite(dst, data, end)
	st.carry = append(st.carry[:0], data[len(data)-rest:]...)
	if n > 0 {
		p.matches.Add(int64(n))
	}
	return out
}

// rewrite appends data to dst with the matches replaced; rest is how many bytes at the end
// it held back (a proper prefix of a From, unless end), n how many matches it replaced.
func (p *SubFilter) rewrite(dst, data []byte, end bool) (out []byte, rest, n int) {
	start := 0
	for i := 0; i < len(data); {
		if !p.first[data[i]] {
			i++
			continue
		}
		matched, wait := -1, false
		for k, f := range p.from {
			if len(data)-i >= len(f) {
				if bytes.Equal(data[i:i+len(f)], f) {
					matched = k
					break
				}
			} else if !end && bytes.HasPrefix(f, data[i:]) {
				wait = true // an earlier rule may yet match here: decide with more bytes
				break
			}
		}
		switch {
		case wait:
			return append(dst, data[start:i]...), len(data) - i, n
		case matched >= 0:
			dst = append(append(dst, data[start:i]...), p.to[matched]...)
			i += len(p.from[matched])
			start = i
			n++
		default:
			i++
		}
	}
	return append(dst, data[start:]...), 0, n
}

// Log returns the response's state to the pool.
func (p *SubFilter) Log(r *plugin.Request, _ int) {
	s := r.Slot(p.slot)
	if st, ok := s.V.(*state); ok {
		s.V = nil
		states.Put(st)
	}
}

// PluginStats reports the bodies rewritten and the replacements made.
func (p *SubFilter) PluginStats(emit func(plugin.Stat)) {
	emit(plugin.Stat{Key: "sub_filter", Label: "response", Value: float64(p.bodies.Load())})
	emit(plugin.Stat{Key: "sub_filter", Label: "replacement", Value: float64(p.matches.Load())})
}

var (
	_ plugin.RequestFilter      = (*SubFilter)(nil)
	_ plugin.ResponseBodyFilter = (*SubFilter)(nil)
	_ plugin.LogFilter          = (*SubFilter)(nil)
	_ plugin.StatsReporter      = (*SubFilter)(nil)
)
