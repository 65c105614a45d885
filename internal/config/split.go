package config

import (
	"fmt"
	"slices"
	"strings"
)

// Split sends a route's requests to several upstreams (docs/traffic.md): a request that
// matches a rule goes to the rule's upstream; any other goes to one of the weighted shares.
// Each upstream keeps its own targets, balancer, health checks, pools, timeouts and retry
// policy: the split only chooses which upstream serves a request.
type Split struct {
	// Upstreams are the weighted shares, in order. At least one with a weight above 0;
	// each upstream at most once.
	Upstreams []SplitShare `yaml:"upstreams"`
	// Rules send the requests whose headers match to one upstream of Upstreams, whatever
	// its weight (so a weight-0 canary can still be reached by a header); the first rule
	// that holds wins. Omitted: none.
	Rules []SplitRule `yaml:"rules"`
	// Sticky keeps a client on its share: the share is chosen from a hash of a header's or a
	// cookie's value instead of by rotation. Requests without the key are rotated.
	// Omitted: no stickiness.
	Sticky *Sticky `yaml:"sticky"`
	// Fallover: when the chosen upstream has no available target (all marked down by
	// active checks or ejected), the request goes to the next share in order with a weight
	// above 0 that has one. Default true; false leaves it to the chosen upstream (its panic
	// mode, or 503 no_healthy_target).
	Fallover *bool `yaml:"fallover"`

	// defaulted: applyDefaults filled the route's upstream from the split. Not YAML.
	defaulted bool
}

// SplitShare is one weighted upstream of a [Split].
type SplitShare struct {
	// Upstream is the id of an upstream. Required.
	Upstream string `yaml:"upstream"`
	// Weight is the share's part of the requests not taken by a rule, relative to the sum
	// of all weights. Default 1; 0 sends it nothing (it stays reachable by rules); negative
	// is invalid.
	Weight *int `yaml:"weight"`
}

// SplitRule sends the requests its headers match to one upstream.
type SplitRule struct {
	// Headers are request header conditions; all must hold. At least one.
	Headers []ValueMatch `yaml:"headers"`
	// Upstream is the id of one of the split's upstreams. Required.
	Upstream string `yaml:"upstream"`
}

// Sticky names the request value a split hashes to pick a share.
type Sticky struct {
	// HashOn is "header" or "cookie". Required.
	HashOn string `yaml:"hash_on"`
	// Key is the header's or the cookie's name. Required.
	Key string `yaml:"key"`
}

// Mirror copies a share of a route's requests to another upstream, fire and forget: the
// copies' responses are discarded and never reach the client (docs/traffic.md).
type Mirror struct {
	// Upstream is the id of the upstream the copies go to. Required.
	Upstream string `yaml:"upstream"`
	// Percent of the route's requests copied, in (0, 100]. Default 100.
	Percent *float64 `yaml:"percent"`
	// MaxBodyBytes: requests whose body is larger, or of unknown length and not all
	// arrived when the request is forwarded, are not copied (counted). Default 65536; at
	// most 1048576 (1 MiB); 0 copies only requests without a body.
	MaxBodyBytes *int64 `yaml:"max_body_bytes"`
	// MaxConcurrent caps the copies in flight for the route; a request arriving while it is
	// reached is not copied (counted as dropped). Default 64; 0 is invalid.
	MaxConcurrent *int `yaml:"max_concurrent"`
}

// Split and mirror defaults.
const (
	DefaultSplitWeight         = 1
	DefaultMirrorPercent       = 100.0
	DefaultMirrorMaxBodyBytes  = 64 << 10
	MaxMirrorBodyBytes         = 1 << 20
	DefaultMirrorMaxConcurrent = 64
)

// Sticky hash sources.
const (
	StickyHeader = "header"
	StickyCookie = "cookie"
)

// Primary is the split's first upstream with a weight above 0 ("" when none): the route's
// upstream for what needs a single one (the plugin chain, requests answered before the
// split chose).
func (s *Split) Primary() string {
	for _, sh := range s.Upstreams {
		if sh.Weight == nil || *sh.Weight > 0 {
			return sh.Upstream
		}
	}
	return ""
}

// FalloverEnabled reports the effective Fallover setting.
func (s *Split) FalloverEnabled() bool { return s.Fallover == nil || *s.Fallover }

// defaultSplit fills the split's and mirror's omitted fields and, when the route names no
// upstream itself, the route's upstream from the split (see [Split.Primary]).
func defaultSplit(r *Route) {
	if s := r.Split; s != nil {
		for i := range s.Upstreams {
			setIfNil(&s.Upstreams[i].Weight, DefaultSplitWeight)
		}
		setIfNil(&s.Fallover, true)
		if r.Upstream == "" {
			r.Upstream, s.defaulted = s.Primary(), true
		}
	}
	if m := r.Mirror; m != nil {
		setIfNil(&m.Percent, DefaultMirrorPercent)
		setIfNil(&m.MaxBodyBytes, DefaultMirrorMaxBodyBytes)
		setIfNil(&m.MaxConcurrent, DefaultMirrorMaxConcurrent)
	}
}

// validateSplit checks route r's split; b is the route's path ("routes[2]").
func (c *Config) validateSplit(p *problems, b string, r *Route) {
	s := r.Split
	if !s.defaulted && r.Upstream != "" {
		p.add(b+".upstream", "omit upstream when split is set: the split names the upstreams")
	}
	if len(s.Upstreams) == 0 {
		p.add(b+".split.upstreams", "required: at least one weighted upstream")
	}
	seen := map[string]int{}
	sum := 0
	for i, sh := range s.Upstreams {
		sp := fmt.Sprintf("%s.split.upstreams[%d]", b, i)
		c.checkUpstreamRef(p, sp+".upstream", sh.Upstream)
		if j, dup := seen[sh.Upstream]; dup && sh.Upstream != "" {
			p.add(sp+".upstream", "upstream %q is already split.upstreams[%d]", sh.Upstream, j)
		}
		seen[sh.Upstream] = i
		if w := *sh.Weight; w < 0 {
			p.add(sp+".weight", "must not be negative (0 sends nothing)")
		} else {
			sum += w
		}
		if u := c.UpstreamByID(sh.Upstream); u != nil && len(u.Plugins) > 0 {
			p.add(sp+".upstream", "upstream %q has plugins, which split routes do not run: put them on the route", sh.Upstream)
		}
	}
	if len(s.Upstreams) > 0 && sum == 0 {
		p.add(b+".split.upstreams", "every weight is 0: at least one share must have a weight above 0")
	}
	for i, rule := range s.Rules {
		rp := fmt.Sprintf("%s.split.rules[%d]", b, i)
		if len(rule.Headers) == 0 {
			p.add(rp+".headers", "required: at least one header condition")
		}
		for j, vm := range rule.Headers {
			validateValueMatch(p, fmt.Sprintf("%s.headers[%d]", rp, j), vm, true)
		}
		switch _, ok := seen[rule.Upstream]; {
		case rule.Upstream == "":
			p.add(rp+".upstream", "required: one of the split's upstreams")
		case !ok:
			p.add(rp+".upstream", "upstream %q is not one of split.upstreams", rule.Upstream)
		}
	}
	if st := s.Sticky; st != nil {
		if st.HashOn != StickyHeader && st.HashOn != StickyCookie {
			p.add(b+".split.sticky.hash_on", "must be %q or %q, got %q", StickyHeader, StickyCookie, st.HashOn)
		}
		if strings.TrimSpace(st.Key) == "" {
			p.add(b+".split.sticky.key", "required: the header's or cookie's name")
		}
	}
}

// validateMirror checks route r's mirror; b is the route's path.
func (c *Config) validateMirror(p *problems, b string, m *Mirror) {
	c.checkUpstreamRef(p, b+".mirror.upstream", m.Upstream)
	if v := *m.Percent; !(v > 0 && v <= 100) {
		p.add(b+".mirror.percent", "must be in (0, 100], got %g", v)
	}
	if v := *m.MaxBodyBytes; v < 0 || v > MaxMirrorBodyBytes {
		p.add(b+".mirror.max_body_bytes", "must be in [0, %d], got %d", MaxMirrorBodyBytes, v)
	}
	if *m.MaxConcurrent <= 0 {
		p.add(b+".mirror.max_concurrent", "must be at least 1")
	}
}

// checkUpstreamRef checks that id names an upstream.
func (c *Config) checkUpstreamRef(p *problems, path, id string) {
	switch {
	case id == "":
		p.add(path, "required: the id of an upstream")
	case c.UpstreamByID(id) == nil:
		p.add(path, "unknown upstream %q", id)
	}
}

// namesUpstream reports whether r sends requests to upstream id: as its upstream, a share
// of its split or its mirror. A cluster change checked object by object ([RouteIndex.Check])
// uses it so that removing an upstream a split or mirror still names is refused.
func (r *Route) namesUpstream(id string) bool {
	if r.Upstream == id {
		return true
	}
	if r.Mirror != nil && r.Mirror.Upstream == id {
		return true
	}
	if r.Split != nil {
		for _, sh := range r.Split.Upstreams {
			if sh.Upstream == id {
				return true
			}
		}
	}
	return false
}

// splitsTo reports whether r has a split with a share on upstream id ([RouteIndex.Check]:
// split routes do not run upstream plugins, so a share's upstream may have none).
func (r *Route) splitsTo(id string) bool {
	return r.Split != nil && slices.ContainsFunc(r.Split.Upstreams, func(sh SplitShare) bool { return sh.Upstream == id })
}
