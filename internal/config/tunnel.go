package config

import (
	"strings"
	"time"
)

// Tunnel is a route's policy for protocol upgrades (RFC 9110 §7.8): requests with
// "Connection: upgrade" and "Upgrade: <protocol>" that, once the backend answers 101
// Switching Protocols, turn the connection into a two-way byte tunnel (WebSocket).
type Tunnel struct {
	// Protocols are the Upgrade protocols forwarded, case-insensitive. Default
	// [websocket]; an empty list refuses every upgrade (the request is forwarded as a plain
	// request without its Upgrade field). "h2c" is never allowed: forwarding it lets a
	// client smuggle HTTP/2 requests past the gateway's routing.
	Protocols []string `yaml:"protocols"`
	// IdleTimeout closes a tunnel that carried no byte in either direction this long.
	// Default 1h; 0 is invalid. WebSocket clients and servers usually ping well within it.
	IdleTimeout Duration `yaml:"idle_timeout"`
	// MaxLifetime closes a tunnel this long after it opened. Default 0: no limit.
	MaxLifetime Duration `yaml:"max_lifetime"`
}

// Tunnel defaults.
const DefaultTunnelIdleTimeout = Duration(time.Hour)

// DefaultTunnelProtocols are the upgrades a route forwards unless it says otherwise.
var DefaultTunnelProtocols = []string{"websocket"}

func defaultTunnel(t *Tunnel) {
	if t.Protocols == nil {
		t.Protocols = append([]string(nil), DefaultTunnelProtocols...)
	}
	for i, p := range t.Protocols {
		t.Protocols[i] = strings.ToLower(p)
	}
	setIfZero(&t.IdleTimeout, DefaultTunnelIdleTimeout)
}

func validateTunnel(p *problems, b string, t Tunnel) {
	b += ".tunnel"
	for i, proto := range t.Protocols {
		switch {
		case proto == "h2c":
			p.add(b+".protocols", "h2c cannot be forwarded: an h2c upgrade through a gateway lets clients send HTTP/2 requests that bypass its routes and rules (h2c smuggling)")
		case !isToken(proto):
			p.add(b+".protocols", "protocols[%d] %q is not a protocol token such as websocket", i, proto)
		}
	}
	if t.IdleTimeout < 0 {
		p.add(b+".idle_timeout", "must be positive")
	}
	if t.MaxLifetime < 0 {
		p.add(b+".max_lifetime", "must not be negative (0 means no limit)")
	}
}
