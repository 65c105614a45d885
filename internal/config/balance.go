package config

import (
	"math"
	"strings"
	"time"

	"golang.org/x/net/http/httpguts"
)

// Balancer, health check and limits defaults and validation. docs/load-balancing.md
// documents every field.

// Load-balancing and health defaults.
const (
	DefaultBalancerPolicy = "round_robin"
	DefaultPanicThreshold = 0.5

	DefaultCheckType          = "http"
	DefaultCheckPath          = "/"
	DefaultCheckInterval      = Duration(10 * time.Second)
	DefaultCheckTimeout       = Duration(2 * time.Second)
	DefaultHealthyThreshold   = 2
	DefaultUnhealthyThreshold = 3
	DefaultCheckJitter        = 0.1

	DefaultPassiveEnabled      = true
	DefaultConsecutiveFailures = 5
	DefaultCount5xx            = true
	DefaultBaseEjection        = Duration(30 * time.Second)
	DefaultMaxEjection         = Duration(300 * time.Second)
)

// Balancer policies and hash keys accepted by validation.
var (
	balancerPolicies = []string{"round_robin", "least_request", "ewma", "hash"}
	hashOns          = []string{"header", "cookie", "query", "client_ip", "uri"}
)

func defaultBalancer(b *Balancer) {
	setIfZero(&b.Policy, DefaultBalancerPolicy)
}

func defaultHealthCheck(h *HealthCheck) {
	setIfNil(&h.PanicThreshold, DefaultPanicThreshold)
	if a := h.Active; a != nil {
		setIfZero(&a.Type, DefaultCheckType)
		if a.Type == "http" {
			setIfZero(&a.Path, DefaultCheckPath)
		}
		setIfZero(&a.Interval, DefaultCheckInterval)
		setIfZero(&a.Timeout, DefaultCheckTimeout)
		setIfZero(&a.HealthyThreshold, DefaultHealthyThreshold)
		setIfZero(&a.UnhealthyThreshold, DefaultUnhealthyThreshold)
		setIfNil(&a.Jitter, DefaultCheckJitter)
	}
	if h.Passive == nil {
		// On by default (a dead target should not cost a failed connect on every other
		// request), but only on the gateway's own failures: a backend's 5xx may be its
		// answer to a bad request, and counting it is a choice to make by writing the block.
		h.Passive = &PassiveCheck{Count5xx: new(false)}
	}
	if ps := h.Passive; ps != nil {
		setIfNil(&ps.Enabled, DefaultPassiveEnabled)
		setIfZero(&ps.ConsecutiveFailures, DefaultConsecutiveFailures)
		setIfNil(&ps.Count5xx, DefaultCount5xx)
		setIfZero(&ps.BaseEjection, DefaultBaseEjection)
		setIfZero(&ps.MaxEjection, DefaultMaxEjection)
	}
}

func validateBalancer(p *problems, base string, b Balancer) {
	if !oneOf(b.Policy, balancerPolicies) {
		p.add(base+".policy", "unknown policy %q: want %s", b.Policy, strings.Join(balancerPolicies, ", "))
	}
	if b.SlowStart < 0 {
		p.add(base+".slow_start", "must not be negative (0 turns slow start off)")
	}
	if b.Policy != "hash" {
		if b.HashOn != "" {
			p.add(base+".hash_on", "only valid with policy: hash")
		}
		if b.HashKey != "" {
			p.add(base+".hash_key", "only valid with policy: hash")
		}
		return
	}
	switch b.HashOn {
	case "":
		p.add(base+".hash_on", "required with policy: hash; want %s", strings.Join(hashOns, ", "))
	case "header", "cookie", "query":
		if b.HashKey == "" {
			p.add(base+".hash_key", "required with hash_on: %s (the %s name)", b.HashOn, b.HashOn)
		}
	case "client_ip", "uri":
		if b.HashKey != "" {
			p.add(base+".hash_key", "not used with hash_on: %s; remove it", b.HashOn)
		}
	default:
		p.add(base+".hash_on", "unknown hash_on %q: want %s", b.HashOn, strings.Join(hashOns, ", "))
	}
}

func validateHealthCheck(p *problems, base string, h HealthCheck) {
	if t := h.PanicThreshold; t != nil && (math.IsNaN(*t) || *t < 0 || *t > 1) {
		p.add(base+".panic_threshold", "must be between 0 and 1, such as 0.5 (0 disables panic mode), got %v", *t)
	}
	if h.Active != nil {
		validateActiveCheck(p, base+".active", *h.Active)
	}
	if ps := h.Passive; ps.IsEnabled() {
		b := base + ".passive"
		if ps.ConsecutiveFailures <= 0 {
			p.add(b+".consecutive_failures", "must be positive, got %d", ps.ConsecutiveFailures)
		}
		if ps.BaseEjection <= 0 {
			p.add(b+".base_ejection", "must be positive")
		}
		if ps.MaxEjection <= 0 {
			p.add(b+".max_ejection", "must be positive")
		} else if ps.MaxEjection < ps.BaseEjection {
			p.add(b+".max_ejection", "must not be below base_ejection (%s), got %s", ps.BaseEjection, ps.MaxEjection)
		}
	}
}

func validateActiveCheck(p *problems, b string, a ActiveCheck) {
	switch a.Type {
	case "http":
		if a.Service != "" {
			p.add(b+".service", "only valid with type: grpc (the grpc.health.v1 service name)")
		}
		if !strings.HasPrefix(a.Path, "/") || !headerSafe(a.Path) {
			p.add(b+".path", "must start with '/' and contain no spaces or control characters, got %q", a.Path)
		}
		if !headerSafe(a.Host) {
			p.add(b+".host", "must contain no spaces or control characters, got %q", a.Host)
		}
		for i, s := range a.ExpectedStatuses {
			if s < 100 || s > 599 {
				p.add(b+".expected_statuses", "status %d (item %d) is not between 100 and 599", s, i)
			}
		}
	case "tcp", "grpc":
		if a.Type == "tcp" && a.Service != "" {
			p.add(b+".service", "only valid with type: grpc (the grpc.health.v1 service name)")
		}
		if !headerSafe(a.Service) {
			p.add(b+".service", "must contain no spaces or control characters, got %q", a.Service)
		}
		if a.Type == "tcp" && a.Host != "" {
			p.add(b+".host", "only valid with type: http or grpc")
		}
		// A grpc check's host is its :authority: one a server cannot parse (grpc-go refuses
		// such a stream) would fail every check rather than the config.
		if a.Type == "grpc" && (!headerSafe(a.Host) || !httpguts.ValidHostHeader(a.Host)) {
			p.add(b+".host", "must be a host or host:port (the :authority of the check), got %q", a.Host)
		}
		httpOnly := map[string]bool{"path": a.Path != "",
			"expected_statuses": len(a.ExpectedStatuses) > 0, "body_contains": a.BodyContains != ""}
		for _, f := range sortedKeys(httpOnly) {
			if httpOnly[f] {
				p.add(b+"."+f, "only valid with type: http")
			}
		}
	default:
		p.add(b+".type", "unknown check type %q: want http, tcp or grpc", a.Type)
	}
	if a.Interval <= 0 {
		p.add(b+".interval", "must be positive")
	}
	if a.Timeout <= 0 {
		p.add(b+".timeout", "must be positive")
	}
	if a.HealthyThreshold <= 0 {
		p.add(b+".healthy_threshold", "must be positive, got %d", a.HealthyThreshold)
	}
	if a.UnhealthyThreshold <= 0 {
		p.add(b+".unhealthy_threshold", "must be positive, got %d", a.UnhealthyThreshold)
	}
	if j := a.Jitter; j != nil && (math.IsNaN(*j) || *j < 0 || *j >= 1) {
		p.add(b+".jitter", "must be at least 0 and below 1, such as 0.1, got %v", *j)
	}
}

func validateLimits(p *problems, base string, l Limits) {
	if l.MaxConcurrentRequests < 0 {
		p.add(base+".max_concurrent_requests", "must not be negative (0 means unlimited), got %d", l.MaxConcurrentRequests)
	}
	if l.MaxConcurrentRetries < 0 {
		p.add(base+".max_concurrent_retries", "must not be negative (0 means unlimited), got %d", l.MaxConcurrentRetries)
	}
}

func oneOf(s string, set []string) bool {
	for _, x := range set {
		if s == x {
			return true
		}
	}
	return false
}

// headerSafe reports whether s can be written into a request line or header as is.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// IsEnabled reports whether passive ejection is on (a nil check is off; Parse never leaves
// one nil).
func (p *PassiveCheck) IsEnabled() bool { return p != nil && (p.Enabled == nil || *p.Enabled) }
