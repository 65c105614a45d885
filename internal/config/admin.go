package config

import (
	"errors"
	"fmt"
	"net"
	"strings"
)

// DefaultAdminAddress is where the admin listener binds unless told otherwise.
const DefaultAdminAddress = "127.0.0.1:9180"

// MinAdminAPIKeyLength is the shortest accepted admin API key. A key is a bearer secret
// sent on every admin request; a short one is guessable.
const MinAdminAPIKeyLength = 16

func defaultAdmin(a *Admin) {
	setIfNil(&a.Enabled, true)
	setIfZero(&a.Address, DefaultAdminAddress)
}

// IsEnabled reports whether the admin listener is on (nil means the default, true).
func (a Admin) IsEnabled() bool { return a.Enabled == nil || *a.Enabled }

// validateAdmin checks the admin block. An admin listener reachable from other hosts must
// have an API key: there is deliberately no default key (a shipped default admin key was
// APISIX's CVE-2020-13945). Port 0 is accepted (tests bind a free port).
func (c *Config) validateAdmin(p *problems) {
	a := c.Admin
	if !a.IsEnabled() {
		return
	}
	if a.APIKey != "" {
		if err := checkAPIKey(a.APIKey); err != nil {
			p.add("admin.api_key", "%v", err)
		}
	}
	if a.Address == "" {
		return // defaults fill it; a Config built in code may leave it empty
	}
	if err := checkHostPort(a.Address, true); err != nil {
		p.add("admin.address", "%v", err)
		return
	}
	if a.APIKey == "" && !isLoopback(a.Address) {
		p.add("admin.api_key", "required because admin.address %q is reachable from other hosts; set a random key of at least %d characters, or bind the admin listener to 127.0.0.1", a.Address, MinAdminAPIKeyLength)
	}
	if strings.HasSuffix(a.Address, ":0") {
		return
	}
	for i, l := range c.Listeners {
		if l.Address == a.Address {
			p.add("admin.address", "same address as listeners[%d] (%q); the admin listener needs its own port", i, l.Address)
		}
	}
}

// isLoopback reports whether the host:port addr can only be reached from this host: a
// loopback IP or "localhost". An empty host (all interfaces) and other names are not.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// checkAPIKey requires a key that can be sent in a header unchanged and is not trivially short.
func checkAPIKey(key string) error {
	for _, r := range key {
		if r <= ' ' || r > '~' {
			return errors.New("must be printable ASCII without spaces")
		}
	}
	if len(key) < MinAdminAPIKeyLength {
		return fmt.Errorf("too short (%d characters); use at least %d, such as the output of `openssl rand -hex 24`", len(key), MinAdminAPIKeyLength)
	}
	return nil
}
