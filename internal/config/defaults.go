package config

import (
	"fmt"
	"strings"
	"time"
)

// Defaults applied by [Parse] to fields that are omitted. docs/config.md documents them.
const (
	// Listener.
	DefaultReadHeaderTimeout = Duration(10 * time.Second)
	DefaultReadTimeout       = Duration(60 * time.Second)
	DefaultWriteTimeout      = Duration(60 * time.Second)
	DefaultIdleTimeout       = Duration(60 * time.Second)
	DefaultTCPKeepalive      = Duration(15 * time.Second)
	DefaultMaxHeaderBytes    = 65536
	DefaultMaxHeaders        = 100
	DefaultUnderscores       = UnderscoresDrop

	// Target and keep-alive (per upstream).
	DefaultWeight = 1

	DefaultKeepaliveEnabled     = true
	DefaultKeepaliveIdleTimeout = Duration(60 * time.Second)
	DefaultMaxIdle              = 64
	DefaultMaxPending           = 1024
	DefaultQueueTimeout         = Duration(5 * time.Second)
	DefaultLearn                = true
	DefaultSafetyFraction       = 0.85
	DefaultUnsafeMaxIdle        = Duration(500 * time.Millisecond)
	DefaultPreconnect           = true

	// Upstream timeouts; route timeouts inherit them.
	DefaultConnectTimeout       = Duration(5 * time.Second)
	DefaultUpstreamReadTimeout  = Duration(60 * time.Second)
	DefaultUpstreamWriteTimeout = Duration(60 * time.Second)

	// Rewrite, log, process.
	DefaultRewriteHost   = HostClient
	DefaultLogLevel      = "info"
	DefaultAccessLog     = "stdout"
	DefaultShutdownGrace = Duration(30 * time.Second)
)

// Values of [Listener.UnderscoresInHeaders].
const (
	UnderscoresDrop   = "drop"
	UnderscoresAllow  = "allow"
	UnderscoresReject = "reject"
)

// Values of [Rewrite.Host].
const (
	HostClient = "client"
	HostTarget = "target"
	HostFixed  = "fixed"
)

// applyDefaults fills omitted fields. Pointer fields are set only when nil, so an explicit
// zero survives for validation to reject. Plain fields are set when zero; Parse reports
// explicit zeros of those that must not be 0 before calling it (see explicitZeros).
// It also normalizes case: hosts to lower case, methods to upper case.
func applyDefaults(c *Config) {
	dir := configDir(c)
	defaultCluster(c)         // cluster.go
	defaultTracing(c.Tracing) // tracing.go
	for i := range c.Listeners {
		defaultListener(&c.Listeners[i])
		if t := c.Listeners[i].TLS; t != nil {
			defaultTLS(t, dir)
		}
		if r := c.Listeners[i].RedirectHTTPS; r != nil {
			setIfZero(&r.Port, 443)
		}
	}
	for i := range c.Upstreams {
		u := &c.Upstreams[i]
		for j := range u.Targets {
			setIfZero(&u.Targets[j].Weight, DefaultWeight)
		}
		defaultKeepalive(&u.Keepalive)
		setIfZero(&u.Timeouts.Connect, DefaultConnectTimeout)
		setIfZero(&u.Timeouts.Read, DefaultUpstreamReadTimeout)
		setIfZero(&u.Timeouts.Write, DefaultUpstreamWriteTimeout)
		defaultBalancer(&u.Balancer)
		defaultHealthCheck(&u.HealthCheck)
		defaultRetry(&u.Retry)
		defaultDiscovery(&u.Discovery)
		defaultUpstreamTLS(u, dir)
		defaultUpstreamH2(u)
	}
	for _, r := range c.Routes {
		defaultTunnel(&r.Tunnel)
		// Route timeouts left 0 inherit the upstream's: see Route.EffectiveTimeouts.
		for j, h := range r.Match.Hosts {
			r.Match.Hosts[j] = strings.ToLower(h)
		}
		for j, m := range r.Match.Methods {
			r.Match.Methods[j] = strings.ToUpper(m)
		}
		for _, vm := range r.Match.TLS {
			if vm.Name == TLSMatchSNI && vm.Exact != nil {
				*vm.Exact = strings.ToLower(*vm.Exact) // the sni fact is lower case, as hosts
			}
		}
		setIfZero(&r.Rewrite.Host, DefaultRewriteHost)
		defaultSplit(r) // split.go
	}
	setIfZero(&c.Log.Level, DefaultLogLevel)
	setIfZero(&c.Log.Access, DefaultAccessLog)
	setIfNil(&c.ShutdownGrace, DefaultShutdownGrace)
	defaultAdmin(&c.Admin)
}

func defaultListener(l *Listener) {
	setIfZero(&l.Name, l.Address)
	setIfZero(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	setIfZero(&l.ReadTimeout, DefaultReadTimeout)
	setIfZero(&l.WriteTimeout, DefaultWriteTimeout)
	setIfZero(&l.IdleTimeout, DefaultIdleTimeout)
	setIfNil(&l.TCPKeepalive, DefaultTCPKeepalive)
	setIfZero(&l.MaxHeaderBytes, DefaultMaxHeaderBytes)
	setIfZero(&l.MaxHeaders, DefaultMaxHeaders)
	setIfZero(&l.UnderscoresInHeaders, DefaultUnderscores)
	if l.HasProtocol(ProtoH2) || l.HasProtocol(ProtoH2C) {
		defaultHTTP2(&l.HTTP2)
	}
}

func defaultKeepalive(k *Keepalive) {
	setIfNil(&k.Enabled, DefaultKeepaliveEnabled)
	setIfNil(&k.IdleTimeout, DefaultKeepaliveIdleTimeout)
	setIfNil(&k.MaxIdle, DefaultMaxIdle)
	setIfNil(&k.MaxPending, DefaultMaxPending)
	setIfNil(&k.QueueTimeout, DefaultQueueTimeout)
	setIfNil(&k.Learn, DefaultLearn)
	setIfNil(&k.SafetyFraction, DefaultSafetyFraction)
	setIfNil(&k.UnsafeMaxIdle, DefaultUnsafeMaxIdle)
	setIfNil(&k.Preconnect, DefaultPreconnect)
}

// String formats d for messages and docs: whole seconds as "60s", else as time.Duration.
func (d Duration) String() string {
	if d > 0 && d%Duration(time.Second) == 0 {
		return fmt.Sprintf("%ds", d/Duration(time.Second))
	}
	return time.Duration(d).String()
}

func setIfZero[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

func setIfNil[T any](p **T, v T) {
	if *p == nil {
		*p = &v
	}
}

// explicitZeros reports plain (non-pointer) fields written as 0 where 0 is invalid. After
// decoding, such a field cannot be told from an omitted one, so the node tree is asked
// whether the key was written; applyDefaults then overwrites the zero.
func explicitZeros(c *Config, idx *nodeIndex) problems {
	var p problems
	check := func(path string, isZero bool, format string, args ...any) {
		if isZero && idx.explicit(path) {
			p.add(path, format, args...)
		}
	}
	const noTimeout = "0 is not allowed (it would mean no timeout); omit the field for the default %s"
	for i, l := range c.Listeners {
		b := fmt.Sprintf("listeners[%d].", i)
		check(b+"read_header_timeout", l.ReadHeaderTimeout == 0, noTimeout, DefaultReadHeaderTimeout)
		check(b+"read_timeout", l.ReadTimeout == 0, noTimeout, DefaultReadTimeout)
		check(b+"write_timeout", l.WriteTimeout == 0, noTimeout, DefaultWriteTimeout)
		check(b+"idle_timeout", l.IdleTimeout == 0, "0 is not allowed; use a small value such as 1s to close idle client connections quickly, or omit the field for the default %s", DefaultIdleTimeout)
		check(b+"max_header_bytes", l.MaxHeaderBytes == 0, "0 is not allowed; omit the field for the default %d", DefaultMaxHeaderBytes)
		check(b+"max_headers", l.MaxHeaders == 0, "0 is not allowed; omit the field for the default %d", DefaultMaxHeaders)
		if l.TLS != nil {
			check(b+"tls.handshake_timeout", l.TLS.HandshakeTimeout == 0, noTimeout, DefaultHandshakeTimeout)
		}
	}
	for i, u := range c.Upstreams {
		b := fmt.Sprintf("upstreams[%d].", i)
		for j, t := range u.Targets {
			check(fmt.Sprintf("%stargets[%d].weight", b, j), t.Weight == 0, "0 is not allowed; remove the target instead")
		}
		checkTimeoutZeros(check, b+"timeouts.", u.Timeouts, "omit the field for the default")
		checkHealthZeros(check, b+"health_check.", u.HealthCheck)
	}
	for i, r := range c.Routes {
		checkTimeoutZeros(check, fmt.Sprintf("routes[%d].timeouts.", i), r.Timeouts, "omit the field to inherit the upstream's")
		check(fmt.Sprintf("routes[%d].tunnel.idle_timeout", i), r.Tunnel.IdleTimeout == 0, noTimeout, DefaultTunnelIdleTimeout)
	}
	return p
}

func checkTimeoutZeros(check func(string, bool, string, ...any), base string, t Timeouts, hint string) {
	const msg = "0 is not allowed (it would mean no timeout); %s"
	check(base+"connect", t.Connect == 0, msg, hint)
	check(base+"read", t.Read == 0, msg, hint)
	check(base+"write", t.Write == 0, msg, hint)
}

// checkHealthZeros rejects health-check durations and thresholds written as 0, which would
// otherwise silently become their defaults.
func checkHealthZeros(check func(string, bool, string, ...any), base string, h HealthCheck) {
	const msg = "0 is not allowed; omit the field for the default %v"
	if a := h.Active; a != nil {
		b := base + "active."
		check(b+"interval", a.Interval == 0, msg, DefaultCheckInterval)
		check(b+"timeout", a.Timeout == 0, msg, DefaultCheckTimeout)
		check(b+"healthy_threshold", a.HealthyThreshold == 0, msg, DefaultHealthyThreshold)
		check(b+"unhealthy_threshold", a.UnhealthyThreshold == 0, msg, DefaultUnhealthyThreshold)
	}
	if ps := h.Passive; ps != nil {
		b := base + "passive."
		check(b+"consecutive_failures", ps.ConsecutiveFailures == 0, msg, DefaultConsecutiveFailures)
		check(b+"base_ejection", ps.BaseEjection == 0, msg, DefaultBaseEjection)
		check(b+"max_ejection", ps.MaxEjection == 0, msg, DefaultMaxEjection)
	}
}
