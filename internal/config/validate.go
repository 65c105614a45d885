package config

import (
	"fmt"
	"math"
	"regexp"
	"strings"
	"time"
)

// maxWeight bounds Target.Weight so weight sums cannot overflow in the balancer.
const maxWeight = 1_000_000

var reID = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)

// Validate checks c and returns every problem found, joined (see [FieldError]); nil when c
// is valid. It expects defaults to have been applied, as [Parse] does; unset pointer fields
// are accepted since they take their defaults. Errors from Validate carry c.File but no line:
// only Parse knows lines.
func (c *Config) Validate() error {
	return c.validate().join(c.File, nil)
}

func (c *Config) validate() problems {
	var p problems
	c.validateListeners(&p)
	c.validateUpstreams(&p)
	c.validateRoutes(&p)
	c.validateAdmin(&p)
	c.validateCluster(&p) // cluster.go
	c.validatePlugins(&p) // plugins.go
	c.validateTracing(&p) // tracing.go
	switch c.Log.Level {
	case "", "debug", "info", "warn", "error":
	default:
		p.add("log.level", "unknown level %q: want debug, info, warn or error", c.Log.Level)
	}
	c.Log.validateAccessFields(&p) // accessfields.go
	if c.ShutdownGrace != nil && *c.ShutdownGrace < 0 {
		p.add("shutdown_grace", "must not be negative")
	}
	return p
}

func (c *Config) validateListeners(p *problems) {
	if len(c.Listeners) == 0 {
		p.add("listeners", "at least one listener is required")
	}
	addrs := map[string]int{}
	names := map[string]int{}
	for i, l := range c.Listeners {
		b := fmt.Sprintf("listeners[%d]", i)
		if l.Address == "" {
			p.add(b+".address", "required, such as \"127.0.0.1:8080\" or \":8080\"")
		} else if err := checkHostPort(l.Address, true); err != nil {
			p.add(b+".address", "%v", err)
		} else if j, dup := addrs[l.Address]; dup && !strings.HasSuffix(l.Address, ":0") {
			p.add(b+".address", "duplicate address %q (also listeners[%d])", l.Address, j)
		} else {
			addrs[l.Address] = i
		}
		if j, dup := names[l.Name]; dup && l.Name != l.Address {
			p.add(b+".name", "duplicate name %q (also listeners[%d])", l.Name, j)
		} else if l.Name != "" {
			names[l.Name] = i
		}
		positive := map[string]int64{
			"read_header_timeout": int64(l.ReadHeaderTimeout), "read_timeout": int64(l.ReadTimeout),
			"write_timeout": int64(l.WriteTimeout), "idle_timeout": int64(l.IdleTimeout),
			"max_header_bytes": int64(l.MaxHeaderBytes), "max_headers": int64(l.MaxHeaders),
		}
		for _, f := range sortedKeys(positive) {
			if positive[f] <= 0 {
				p.add(b+"."+f, "must be positive")
			}
		}
		if l.MaxBodyBytes < 0 {
			p.add(b+".max_body_bytes", "must not be negative (0 means unlimited)")
		}
		validateTCPKeepalive(p, b+".tcp_keepalive", l.TCPKeepalive)
		switch l.UnderscoresInHeaders {
		case "", UnderscoresDrop, UnderscoresAllow, UnderscoresReject:
		default:
			p.add(b+".underscores_in_headers", "unknown value %q: want drop, allow or reject", l.UnderscoresInHeaders)
		}
		if l.TLS != nil {
			validateTLS(p, b, l.TLS)
		}
		validateProtocols(p, b, &l)
		if r := l.RedirectHTTPS; r != nil {
			if l.TLS != nil {
				p.add(b+".redirect_https", "a TLS listener cannot redirect to HTTPS; set redirect_https on a plain HTTP listener")
			}
			if r.Port < 1 || r.Port > 65535 {
				p.add(b+".redirect_https.port", "must be a port number, got %d", r.Port)
			}
		}
	}
}

// maxTCPKeepalive is Linux's largest TCP_KEEPIDLE and TCP_KEEPINTVL (MAX_TCP_KEEPIDLE).
const maxTCPKeepalive = Duration(32767 * time.Second)

// validateTCPKeepalive checks listeners[].tcp_keepalive: 0s (off) or whole seconds the
// kernel takes.
func validateTCPKeepalive(p *problems, path string, d *Duration) {
	switch {
	case d == nil || *d == 0:
	case *d < 0:
		p.add(path, "must not be negative; 0s turns TCP keep-alive off")
	case *d%Duration(time.Second) != 0:
		p.add(path, "must be whole seconds (the kernel counts keep-alive in seconds), got %s", time.Duration(*d))
	case *d > maxTCPKeepalive:
		p.add(path, "at most %s (the kernel's limit), got %s", maxTCPKeepalive, *d)
	}
}

func (c *Config) validateUpstreams(p *problems) {
	seen := map[string]int{}
	for i, u := range c.Upstreams {
		b := fmt.Sprintf("upstreams[%d]", i)
		if checkID(p, b+".id", u.ID) {
			if j, dup := seen[u.ID]; dup {
				p.add(b+".id", "duplicate upstream id %q (also upstreams[%d])", u.ID, j)
			}
			seen[u.ID] = i
		}
		validateUpstream(p, b, u)
	}
}

// validateUpstream runs the checks of one upstream that need no other object (object.go
// runs them alone for a changed upstream).
func validateUpstream(p *problems, b string, u Upstream) {
	if len(u.Targets) == 0 {
		p.add(b+".targets", "at least one target is required")
	}
	addrs := map[string]int{}
	for j, t := range u.Targets {
		tb := fmt.Sprintf("%s.targets[%d]", b, j)
		if t.Address == "" {
			if t.SRV == "" { // an srv target is checked by validateDiscovery
				p.add(tb+".address", "required, such as \"10.0.0.5:8080\"")
			}
		} else if t.Scheme != "" && strings.ContainsAny(t.Address, "/?#") {
			p.add(tb+".address", "invalid address %q: a target is %s://host[:port], without a path (see rewrite.add_prefix)", t.Scheme+"://"+t.Address, t.Scheme)
		} else if t.Scheme != "" && strings.Contains(t.Address, "@") {
			// Not quoted: the user info may hold a password.
			p.add(tb+".address", "invalid address: a target is %s://host[:port], without user info (user:password@); send credentials to the backend as a header (rewrite.set_headers)", t.Scheme)
		} else if scheme, _, ok := strings.Cut(t.Address, "://"); ok && t.Scheme == "" {
			p.add(tb+".address", "invalid address %q: unsupported scheme %q, want https:// or http:// (or none)", t.Address, scheme)
		} else if err := checkHostPort(t.Address, false); err != nil {
			p.add(tb+".address", "%v", err)
		} else if k, dup := addrs[t.Address]; dup {
			p.add(tb+".address", "duplicate target %q (also targets[%d]); use weight instead", t.Address, k)
		} else {
			addrs[t.Address] = j
		}
		if t.Weight <= 0 || t.Weight > maxWeight {
			p.add(tb+".weight", "must be between 1 and %d, got %d", maxWeight, t.Weight)
		}
	}
	validateKeepalive(p, b+".keepalive", u.Keepalive)
	validateBalancer(p, b+".balancer", u.Balancer)
	validateHealthCheck(p, b+".health_check", u.HealthCheck)
	validateLimits(p, b+".limits", u.Limits)
	validateRetry(p, b+".retry", u.Retry)
	validateDiscovery(p, b, u)
	validateUpstreamTLS(p, b, u)
	validateUpstreamH2(p, b, u)
	tm := map[string]Duration{"connect": u.Timeouts.Connect, "read": u.Timeouts.Read, "write": u.Timeouts.Write}
	for _, f := range sortedKeys(tm) {
		if tm[f] <= 0 {
			p.add(b+".timeouts."+f, "must be positive")
		}
	}
}

func validateKeepalive(p *problems, b string, k Keepalive) {
	const off = "write enabled: false to turn connection reuse off"
	if k.IdleTimeout != nil && *k.IdleTimeout <= 0 {
		p.add(b+".idle_timeout", "0 is not allowed: it does not turn keep-alive off; "+off)
	}
	if k.MaxIdle != nil && *k.MaxIdle == 0 {
		p.add(b+".max_idle", "0 is not allowed; "+off)
	}
	nonNegative := map[string]int{"max_conns": k.MaxConns, "max_requests": k.MaxRequests}
	if k.MaxIdle != nil {
		nonNegative["max_idle"] = *k.MaxIdle
	}
	if k.MaxPending != nil {
		nonNegative["max_pending"] = *k.MaxPending
	}
	for _, f := range sortedKeys(nonNegative) {
		if nonNegative[f] < 0 {
			p.add(b+"."+f, "must not be negative, got %d", nonNegative[f])
		}
	}
	if k.QueueTimeout != nil && *k.QueueTimeout <= 0 {
		p.add(b+".queue_timeout", "0 is not allowed; write max_pending: 0 to fail at once instead of waiting")
	}
	if k.MaxLifetime < 0 {
		p.add(b+".max_lifetime", "must not be negative (0 means unlimited)")
	}
	if f := k.SafetyFraction; f != nil && (math.IsNaN(*f) || *f <= 0 || *f >= 1) {
		p.add(b+".safety_fraction", "must be between 0 and 1 (exclusive), such as 0.85, got %v", *f)
	}
	if k.UnsafeMaxIdle != nil && *k.UnsafeMaxIdle < 0 {
		p.add(b+".unsafe_max_idle", "must not be negative")
	}
}

// checkID reports whether id is a valid upstream or route ID, adding a problem if not.
func checkID(p *problems, path, id string) bool {
	switch {
	case id == "":
		p.add(path, "required")
	case !reID.MatchString(id):
		p.add(path, "invalid id %q: use letters, digits, '_', '.', '-'", id)
	default:
		return true
	}
	return false
}
