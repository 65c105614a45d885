// Package iprestriction is the ip-restriction plugin: it allows or denies a request by its
// real client IP (the listener's trusted proxies decide what that is), against IPv4 and IPv6
// CIDRs. Deny wins over allow; with an allow list, an address outside it is denied.
package iprestriction

import (
	"errors"
	"fmt"
	"net/netip"

	"sluice/internal/config"
	"sluice/internal/plugin"
	"sluice/internal/reason"
)

func init() {
	plugin.Register(plugin.Kind{Name: Name, Stage: plugin.StageAccess, New: New})
}

// Name is the plugin's name in configs.
const Name = "ip-restriction"

// Config is ip-restriction's config. At least one of Allow and Deny is required.
type Config struct {
	// Allow lists the CIDRs (or single addresses) allowed; omitted or empty: every address
	// not denied.
	Allow []string `yaml:"allow"`
	// Deny lists the CIDRs (or single addresses) denied, even when an allow entry covers
	// them. Omitted: none.
	Deny []string `yaml:"deny"`
}

// IPRestriction is one ip-restriction instance. The lists are scanned in order: a few
// dozen prefixes cost well under a microsecond.
type IPRestriction struct {
	allow, deny []netip.Prefix
	forbidden   *reason.Error
}

// New builds an ip-restriction instance.
func New(b *plugin.Build) (any, error) {
	var c Config
	if err := b.Decode(&c); err != nil {
		return nil, err
	}
	if len(c.Allow) == 0 && len(c.Deny) == 0 {
		return nil, b.Errorf("", "write allow, deny or both")
	}
	p := &IPRestriction{forbidden: reason.New(403, reason.IPForbidden, "", errors.New("client address not allowed"))}
	var errs []error
	parse := func(field string, list []string) []netip.Prefix {
		var out []netip.Prefix
		for i, s := range list {
			pf, err := config.ParsePrefix(s)
			if err != nil {
				errs = append(errs, b.Errorf(fmt.Sprintf("%s[%d]", field, i), "%v", err))
				continue
			}
			out = append(out, pf)
		}
		return out
	}
	p.allow, p.deny = parse("allow", c.Allow), parse("deny", c.Deny)
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return p, nil
}

// Request denies a client outside the allow list or inside the deny list.
func (p *IPRestriction) Request(r *plugin.Request) error {
	if !p.Allowed(r.ClientIP()) {
		return p.forbidden
	}
	return nil
}

// Allowed reports whether a may pass. An invalid address (a client the gateway could not
// name) passes only when there is no allow list.
func (p *IPRestriction) Allowed(a netip.Addr) bool {
	a = a.Unmap()
	for _, pf := range p.deny {
		if pf.Contains(a) {
			return false
		}
	}
	if len(p.allow) == 0 {
		return true
	}
	for _, pf := range p.allow {
		if pf.Contains(a) {
			return true
		}
	}
	return false
}

var _ plugin.RequestFilter = (*IPRestriction)(nil)
