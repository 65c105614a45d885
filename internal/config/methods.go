package config

import "time"

// The methods below read a field, falling back to its default when the field is unset, so
// they also work on a Config built in code without Parse.

// IsEnabled reports whether connection reuse is on (default true).
func (k Keepalive) IsEnabled() bool { return deref(k.Enabled, DefaultKeepaliveEnabled) }

// LearnEnabled reports whether per-target idle timeout learning is on (default true).
func (k Keepalive) LearnEnabled() bool { return deref(k.Learn, DefaultLearn) }

// TCPKeepaliveValue returns TCPKeepalive or its default (0: off).
func (l Listener) TCPKeepaliveValue() time.Duration {
	return deref(l.TCPKeepalive, DefaultTCPKeepalive).D()
}

// IdleTimeoutValue returns IdleTimeout or its default.
func (k Keepalive) IdleTimeoutValue() time.Duration {
	return deref(k.IdleTimeout, DefaultKeepaliveIdleTimeout).D()
}

// MaxIdleValue returns MaxIdle or its default.
func (k Keepalive) MaxIdleValue() int { return deref(k.MaxIdle, DefaultMaxIdle) }

// MaxPendingValue returns MaxPending or its default.
func (k Keepalive) MaxPendingValue() int { return deref(k.MaxPending, DefaultMaxPending) }

// QueueTimeoutValue returns QueueTimeout or its default.
func (k Keepalive) QueueTimeoutValue() time.Duration {
	return deref(k.QueueTimeout, DefaultQueueTimeout).D()
}

// SafetyFractionValue returns SafetyFraction or its default.
func (k Keepalive) SafetyFractionValue() float64 {
	return deref(k.SafetyFraction, DefaultSafetyFraction)
}

// UnsafeMaxIdleValue returns UnsafeMaxIdle or its default.
func (k Keepalive) UnsafeMaxIdleValue() time.Duration {
	return deref(k.UnsafeMaxIdle, DefaultUnsafeMaxIdle).D()
}

// ShutdownGraceValue returns ShutdownGrace or its default.
func (c *Config) ShutdownGraceValue() time.Duration {
	return deref(c.ShutdownGrace, DefaultShutdownGrace).D()
}

// UpstreamByID returns the upstream with the given ID, or nil.
func (c *Config) UpstreamByID(id string) *Upstream {
	for i := range c.Upstreams {
		if c.Upstreams[i].ID == id {
			return &c.Upstreams[i]
		}
	}
	return nil
}

// EffectiveTimeouts returns the route's timeouts with every field left 0 taken from u, and
// any still 0 from the defaults. u should be the route's upstream.
func (r Route) EffectiveTimeouts(u Upstream) Timeouts {
	t := r.Timeouts
	setIfZero(&t.Connect, u.Timeouts.Connect)
	setIfZero(&t.Read, u.Timeouts.Read)
	setIfZero(&t.Write, u.Timeouts.Write)
	setIfZero(&t.Connect, DefaultConnectTimeout)
	setIfZero(&t.Read, DefaultUpstreamReadTimeout)
	setIfZero(&t.Write, DefaultUpstreamWriteTimeout)
	return t
}

func deref[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}
