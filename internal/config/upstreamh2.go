package config

import "time"

// Upstream protocols (Upstream.Protocol). docs/http2.md#upstream-http2-and-grpc explains them.
const (
	// ProtocolHTTP1: HTTP/1.1 over TCP or TLS (the default).
	ProtocolHTTP1 = "http1"
	// ProtocolH2: HTTP/2 over TLS; the handshake must agree on ALPN "h2".
	ProtocolH2 = "h2"
	// ProtocolH2C: HTTP/2 over plain TCP with prior knowledge (no upgrade).
	ProtocolH2C = "h2c"
	// ProtocolAuto: TLS offering ALPN "h2" and "http/1.1"; the backend's choice decides.
	ProtocolAuto = "auto"
)

// Defaults of the h2 block (an upstream speaking HTTP/2).
const (
	DefaultH2PingAfterIdle   = Duration(5 * time.Second)
	DefaultH2ReadIdleTimeout = Duration(15 * time.Second)
	DefaultH2PingTimeout     = Duration(2 * time.Second)
)

// UpstreamH2 tunes the HTTP/2 connections to an upstream whose protocol is h2, h2c or auto
// (when the backend chose h2). The keepalive block's idle_timeout and learn apply to them too.
type UpstreamH2 struct {
	// MaxConns is the most HTTP/2 connections per target. A new one is opened when every
	// open one carries as many streams as its peer's SETTINGS_MAX_CONCURRENT_STREAMS allows.
	// Default 0: no limit.
	MaxConns int `yaml:"max_conns"`
	// MaxDraining is how many draining HTTP/2 connections per target (retiring at
	// keepalive.max_requests or max_lifetime, or after a GOAWAY: they take no new streams
	// and stay open only for their streams in flight, such as long gRPC streams) are kept
	// beyond max_conns, which counts only the connections that take streams. Past it,
	// draining connections count against max_conns again and new requests wait.
	// Default: the value of max_conns; 0: draining connections always count against
	// max_conns. Unused when max_conns is 0.
	MaxDraining *int `yaml:"max_draining"`
	// PingAfterIdle: a connection that carried no stream for this long is sent a PING, and
	// must answer within PingTimeout, before a new stream goes on it (the HTTP/2 form of
	// the reuse check). Default 5s; 0 pings before every stream that finds the connection
	// idle.
	PingAfterIdle *Duration `yaml:"ping_after_idle"`
	// ReadIdleTimeout: a connection on which nothing was read for this long is sent a
	// PING; no answer within PingTimeout retires it (close reason ping_timeout).
	// Default 15s; 0 turns the read-idle PING off.
	ReadIdleTimeout *Duration `yaml:"read_idle_timeout"`
	// PingTimeout is how long a PING's answer is awaited. Default 2s; must be positive.
	PingTimeout *Duration `yaml:"ping_timeout"`
}

// Draining is MaxDraining with its default (max_conns) when it is not set.
func (h UpstreamH2) Draining() int {
	if h.MaxDraining == nil {
		return h.MaxConns
	}
	return *h.MaxDraining
}

// UsesH2 reports whether u's connections may be HTTP/2 (protocol h2, h2c or auto).
func (u *Upstream) UsesH2() bool {
	return u.Protocol == ProtocolH2 || u.Protocol == ProtocolH2C || u.Protocol == ProtocolAuto
}

// defaultUpstreamH2 fills u's protocol and h2 defaults.
func defaultUpstreamH2(u *Upstream) {
	setIfZero(&u.Protocol, ProtocolHTTP1)
	setIfNil(&u.H2.PingAfterIdle, DefaultH2PingAfterIdle)
	setIfNil(&u.H2.ReadIdleTimeout, DefaultH2ReadIdleTimeout)
	setIfNil(&u.H2.PingTimeout, DefaultH2PingTimeout)
	setIfNil(&u.H2.MaxDraining, u.H2.MaxConns)
}

// validateUpstreamH2 checks protocol against the upstream's TLS and the h2 block (b is the
// upstream's path).
func validateUpstreamH2(p *problems, b string, u Upstream) {
	switch u.Protocol {
	case ProtocolHTTP1:
	case ProtocolAuto:
		if !u.TLSOn() {
			p.add(b+".protocol", "\"auto\" lets the TLS handshake choose (ALPN), but tls is off and plain TCP cannot negotiate: use \"h2c\" for a backend that speaks HTTP/2 with prior knowledge, or \"http1\"; or add a tls block or https:// targets")
		}
	case ProtocolH2:
		if !u.TLSOn() {
			p.add(b+".protocol", "%q needs TLS (ALPN h2): add a tls block or https:// targets, or use \"h2c\" for HTTP/2 over plain TCP", u.Protocol)
		}
	case ProtocolH2C:
		if u.TLSOn() {
			p.add(b+".protocol", "\"h2c\" is HTTP/2 over plain TCP, but tls is enabled: use \"h2\" for HTTP/2 over TLS")
		}
	default:
		p.add(b+".protocol", "unknown protocol %q: want \"http1\", \"h2\", \"h2c\" or \"auto\"", u.Protocol)
	}
	if a := u.HealthCheck.Active; a != nil && a.Type == "grpc" && !u.UsesH2() {
		p.add(b+".health_check.active.type", "grpc checks need protocol: h2, h2c or auto (gRPC runs over HTTP/2)")
	}
	h := u.H2
	if h.MaxConns < 0 {
		p.add(b+".h2.max_conns", "must not be negative (0: no limit), got %d", h.MaxConns)
	}
	if h.MaxDraining != nil && *h.MaxDraining < 0 {
		p.add(b+".h2.max_draining", "must not be negative (0: draining connections count against max_conns), got %d", *h.MaxDraining)
	}
	if h.PingTimeout != nil && *h.PingTimeout <= 0 {
		p.add(b+".h2.ping_timeout", "must be positive")
	}
}
