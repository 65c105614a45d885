package config

import (
	"fmt"
	"net"
	"net/netip"
	"time"
)

// Service discovery defaults and validation. docs/discovery.md documents every field.

// Discovery defaults.
const (
	DefaultDiscoveryMinTTL  = Duration(time.Second)
	DefaultDiscoveryMaxTTL  = Duration(300 * time.Second)
	DefaultDiscoveryTimeout = Duration(2 * time.Second)
)

func defaultDiscovery(d *Discovery) {
	setIfNil(&d.MinTTL, DefaultDiscoveryMinTTL)
	setIfNil(&d.MaxTTL, DefaultDiscoveryMaxTTL)
	setIfNil(&d.Timeout, DefaultDiscoveryTimeout)
}

// IsName reports whether t is resolved through DNS: an SRV target, or an address whose host
// is not an IP address.
func (t Target) IsName() bool {
	if t.SRV != "" {
		return true
	}
	host, _, err := net.SplitHostPort(t.Address)
	return err == nil && host != "" && net.ParseIP(host) == nil
}

// ResolverAddr returns the configured resolver as ip:port ("" when none is configured).
func (d Discovery) ResolverAddr() string {
	if ap, err := netip.ParseAddrPort(d.Resolver); err == nil {
		return ap.String()
	}
	if a, err := netip.ParseAddr(d.Resolver); err == nil {
		return netip.AddrPortFrom(a, 53).String()
	}
	return ""
}

// validateDiscovery checks the srv targets and the discovery block of upstream u (at path b).
func validateDiscovery(p *problems, b string, u Upstream) {
	srvs := map[string]int{}
	for j, t := range u.Targets {
		if t.SRV == "" {
			continue
		}
		tb := fmt.Sprintf("%s.targets[%d]", b, j)
		switch k, dup := srvs[t.SRV]; {
		case t.Address != "":
			p.add(tb+".srv", "set either address or srv, not both")
		case !isDNSName(t.SRV, true):
			p.add(tb+".srv", "invalid SRV name %q: want a name such as \"_http._tcp.api.internal\" (no port)", t.SRV)
		case dup:
			p.add(tb+".srv", "duplicate srv %q (also targets[%d])", t.SRV, k)
		default:
			srvs[t.SRV] = j
		}
	}
	d, db := u.Discovery, b+".discovery"
	if d.Resolver != "" && d.ResolverAddr() == "" {
		p.add(db+".resolver", "invalid resolver %q: want an IP address with an optional port, such as \"10.0.0.2\" or \"127.0.0.1:5353\"", d.Resolver)
	}
	if d.MinTTL != nil && *d.MinTTL <= 0 {
		p.add(db+".min_ttl", "must be positive, such as \"1s\"")
	}
	if d.Timeout != nil && *d.Timeout <= 0 {
		p.add(db+".timeout", "must be positive, such as \"2s\"")
	}
	if d.MaxTTL != nil && d.MinTTL != nil && *d.MinTTL > 0 && *d.MaxTTL < *d.MinTTL {
		p.add(db+".max_ttl", "must be at least min_ttl (%v), got %v", d.MinTTL.D(), d.MaxTTL.D())
	}
}
