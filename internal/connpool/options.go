package connpool

import (
	"context"
	"crypto/tls"
	"net"
	"time"
)

// Defaults applied by [New] to zero fields of [Options]. The gateway passes every option the
// config has (config.Default* there); where both packages have a default they are equal
// (gateway's TestPoolDefaultsMatchConfig), so a pool built without a config behaves like one
// built from a config that leaves the option out.
const (
	DefaultIdleTimeout    = 60 * time.Second
	DefaultMaxIdle        = 64
	DefaultConnectTimeout = 5 * time.Second
	DefaultSafetyFraction = 0.85
	DefaultSweepInterval  = 100 * time.Millisecond
	DefaultReuseFloor     = 10 * time.Millisecond
	DefaultHealThreshold  = 3
	DefaultHealWindow     = 30 * time.Second
	DefaultHealQuiet      = 60 * time.Second
	DefaultGrowInterval   = time.Minute
	DefaultLearnWindow    = 2 * time.Minute
	DefaultHistory        = 64
)

// unsafeShare is the divisor applied to the effective idle timeout for requests that must
// not be replayed: such a request only reuses a connection idle less than effective/4.
// See doc.go for why 4.
const unsafeShare = 4

// Options configures a [Pool]. Durations are plain time.Duration so tests can shrink them;
// zero values get the Default* constants unless said otherwise.
type Options struct {
	// Enabled turns connection reuse on. false: one connection per request, Release always
	// closes it with [CloseKeepAliveDisabled].
	Enabled bool
	// IdleTimeout is the configured maximum idle age of a pooled connection. 0 => 60s.
	IdleTimeout time.Duration
	// MaxIdle is the number of idle connections kept. 0 => 64.
	MaxIdle int
	// MaxConns caps idle + in-use + dialing connections. 0 = unlimited; above it Get waits.
	MaxConns int
	// MaxPending is the number of Get calls allowed to wait when MaxConns is reached; more
	// get 503 pool_queue_full at once. 0 = no queue.
	MaxPending int
	// QueueTimeout is the longest a Get waits for a slot (503 pool_queue_timeout).
	// 0 = wait until the context ends.
	QueueTimeout time.Duration
	// MaxRequests is the number of requests one connection serves. 0 = unlimited.
	MaxRequests int
	// MaxLifetime is the age after which a connection is not reused. 0 = unlimited.
	MaxLifetime time.Duration
	// ConnectTimeout bounds one dial. 0 => 5s.
	ConnectTimeout time.Duration
	// Learn enables learning the backend's idle timeout (see doc.go).
	Learn bool
	// SafetyFraction is the share of the learned backend idle timeout that is used:
	// effective idle = min(IdleTimeout, SafetyFraction*learned). Outside (0, 1) => 0.85.
	SafetyFraction float64
	// UnsafeMaxIdle: a non-idempotent request only reuses a connection idle less than
	// min(UnsafeMaxIdle, effective idle/4), or, once the learned value is confident, less
	// than the close age minus its margin and race window (confidence.go). 0 = such requests
	// always get a fresh connection.
	UnsafeMaxIdle time.Duration
	// Preconnect opens a replacement in the background when the youngest idle connection is
	// about to be retired while traffic is recent (preconnect.go). false: connects happen only
	// on a request's path.
	Preconnect bool
	// SweepInterval is how often idle connections are probed and retired. 0 => 100ms.
	SweepInterval time.Duration
	// ReuseFloor: when the effective idle timeout is below it, connections are not reused.
	// 0 => 10ms.
	ReuseFloor time.Duration
	// HealThreshold failures on reused connections within HealWindow halve the reuse
	// window factor. 0 => 3.
	HealThreshold int
	// HealWindow is the sliding window for HealThreshold. 0 => 30s.
	HealWindow time.Duration
	// HealQuiet is the failure-free period after which the reuse window factor doubles
	// back (up to 1). 0 => 60s.
	HealQuiet time.Duration
	// GrowInterval: a learned value from observation or failure grows by at most 10% per
	// GrowInterval without new evidence. 0 => 1m.
	GrowInterval time.Duration
	// LearnWindow is how long an observed close waits for a confirming one. 0 => 2m.
	LearnWindow time.Duration
	// History is the number of closed connections' life records kept. 0 => 64.
	History int
	// Dial opens a connection. nil => a net.Dialer. The peek check needs the returned conn
	// to implement syscall.Conn (a *net.TCPConn does); other conns skip it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// TLS, when not nil, makes every connection a TLS client connection with this config,
	// its handshake part of the dial (bounded by ConnectTimeout). The pool uses a copy: with
	// no ServerName it verifies the target's host (an IP address: no SNI is sent), and
	// unless SessionTicketsDisabled it keeps its own session cache for resumption. nil:
	// plain TCP. See tls.go.
	TLS *tls.Config
	// TLSID stands for TLS in the Identity: pools whose TLS configs may differ (trust, client
	// certificate, server name, versions, resumption) must have different TLSIDs. The gateway
	// sets a hash of the upstream's tls block and of the files it names, and the server name.
	TLSID string
	// ALPN, when set (protocol auto, with TLS), makes every dial offer ALPN "h2" and
	// "http/1.1" and tells ALPN the target's answer; a connection on which the target chose
	// h2 is handed to it (alpn.go). nil: the handshake offers "http/1.1" as TLS says.
	ALPN ALPN
}

// Identity is what makes two pools interchangeable: every field of [Options] that shapes a
// pool's behaviour, in a comparable form. The gateway keeps a target's pool across a config
// reload, with its connections and learned idle timeout, only when the new Options have the
// same Identity (and the target the same address).
//
// Dial is left out: a function cannot be compared, and the gateway never sets it (tests that
// set it build their pools directly). TLS, a pointer, is left out too: TLSID stands for it
// ("tls" when TLS is set without a TLSID, so a TLS pool never passes for a plain one).
// TestIdentityCoversOptions makes each new field of Options either part of Identity or
// listed as left out, with a reason.
type Identity struct {
	Enabled        bool
	IdleTimeout    time.Duration
	MaxIdle        int
	MaxConns       int
	MaxPending     int
	QueueTimeout   time.Duration
	MaxRequests    int
	MaxLifetime    time.Duration
	ConnectTimeout time.Duration
	Learn          bool
	SafetyFraction float64
	UnsafeMaxIdle  time.Duration
	Preconnect     bool
	SweepInterval  time.Duration
	ReuseFloor     time.Duration
	HealThreshold  int
	HealWindow     time.Duration
	HealQuiet      time.Duration
	GrowInterval   time.Duration
	LearnWindow    time.Duration
	History        int
	TLSID          string
}

// Identity returns o's [Identity].
func (o Options) Identity() Identity {
	return Identity{
		Enabled:        o.Enabled,
		IdleTimeout:    o.IdleTimeout,
		MaxIdle:        o.MaxIdle,
		MaxConns:       o.MaxConns,
		MaxPending:     o.MaxPending,
		QueueTimeout:   o.QueueTimeout,
		MaxRequests:    o.MaxRequests,
		MaxLifetime:    o.MaxLifetime,
		ConnectTimeout: o.ConnectTimeout,
		Learn:          o.Learn,
		SafetyFraction: o.SafetyFraction,
		UnsafeMaxIdle:  o.UnsafeMaxIdle,
		Preconnect:     o.Preconnect,
		SweepInterval:  o.SweepInterval,
		ReuseFloor:     o.ReuseFloor,
		HealThreshold:  o.HealThreshold,
		HealWindow:     o.HealWindow,
		HealQuiet:      o.HealQuiet,
		GrowInterval:   o.GrowInterval,
		LearnWindow:    o.LearnWindow,
		History:        o.History,
		TLSID:          o.tlsID(),
	}
}

func (o Options) tlsID() string {
	if o.TLS != nil && o.TLSID == "" {
		return "tls"
	}
	return o.TLSID
}

func (o Options) withDefaults() Options {
	setDur := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	setInt := func(n *int, v int) {
		if *n <= 0 {
			*n = v
		}
	}
	setDur(&o.IdleTimeout, DefaultIdleTimeout)
	setDur(&o.ConnectTimeout, DefaultConnectTimeout)
	setDur(&o.SweepInterval, DefaultSweepInterval)
	setDur(&o.ReuseFloor, DefaultReuseFloor)
	setDur(&o.HealWindow, DefaultHealWindow)
	setDur(&o.HealQuiet, DefaultHealQuiet)
	setDur(&o.GrowInterval, DefaultGrowInterval)
	setDur(&o.LearnWindow, DefaultLearnWindow)
	setInt(&o.MaxIdle, DefaultMaxIdle)
	setInt(&o.HealThreshold, DefaultHealThreshold)
	setInt(&o.History, DefaultHistory)
	if o.SafetyFraction <= 0 || o.SafetyFraction >= 1 {
		o.SafetyFraction = DefaultSafetyFraction
	}
	if o.Dial == nil {
		d := &net.Dialer{}
		o.Dial = d.DialContext
	}
	return o
}

// CloseReason says why a connection was closed. Values are stable snake_case strings used
// in logs, metrics and the admin API.
type CloseReason string

// Close reasons.
const (
	CloseIdleTimeout       CloseReason = "idle_timeout"        // configured IdleTimeout reached
	CloseLearnedTimeout    CloseReason = "learned_timeout"     // retired before the learned backend timeout
	CloseBackendClosedIdle CloseReason = "backend_closed_idle" // peer FIN/RST found on an idle conn
	CloseUnsolicitedData   CloseReason = "unsolicited_data"    // bytes waiting on an idle conn
	CloseResetOnReuse      CloseReason = "reset_on_reuse"      // the request failed on a reused conn
	CloseMaxRequests       CloseReason = "max_requests"        // MaxRequests or Keep-Alive max reached
	CloseMaxLifetime       CloseReason = "max_lifetime"        // MaxLifetime reached
	CloseBackendClose      CloseReason = "backend_close"       // response said Connection: close
	CloseProtocolError     CloseReason = "protocol_error"      // framing does not allow reuse
	CloseRequestError      CloseReason = "request_error"       // the exchange failed (client side or other)
	CloseKeepAliveDisabled CloseReason = "keepalive_disabled"  // Options.Enabled is false
	ClosePoolFull          CloseReason = "pool_full"           // MaxIdle reached
	CloseShutdown          CloseReason = "shutdown"            // Pool.Close
	CloseConfigChange      CloseReason = "config_change"       // Pool.Close on reconfiguration
	CloseReuseSuspended    CloseReason = "reuse_suspended"     // self-healing stopped reuse
	CloseEvicted           CloseReason = "evicted"             // closed to make room for a fresh conn
	CloseUpgraded          CloseReason = "upgraded"            // became a tunnel (101 Switching Protocols)
)
