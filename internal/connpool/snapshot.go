package connpool

import (
	"cmp"
	"maps"
	"slices"
	"time"
)

// Snapshot is a point-in-time view of a [Pool] for the admin API, metrics and tests.
type Snapshot struct {
	Addr    string      `json:"addr"`
	Options OptionsView `json:"options"`
	Closed  bool        `json:"closed"`
	// Learned is the learned backend idle timeout (0 = none) and LearnedSource where it
	// came from: "header", "observed", "failure" or "".
	Learned       time.Duration `json:"learned_idle_timeout"`
	LearnedSource string        `json:"learned_source"`
	// LearnedEvidence says what set the learned value: the header, the two agreeing events
	// (resets on reuse, idle closes) and their idle ages, or the reset that agreed with it.
	LearnedEvidence string `json:"learned_evidence,omitempty"`
	// Provisional is the idle age of a reset on reuse no second event has confirmed yet
	// (0: none): it bounds UnsafeMaxIdle as a learned value would, not EffectiveIdle.
	Provisional time.Duration `json:"provisional_idle_timeout,omitempty"`
	// ProvisionalRefuted: a conn outlived Provisional, so it will not be confirmed, but it
	// still bounds non-idempotent requests on conns not seen alive that long.
	ProvisionalRefuted bool `json:"provisional_refuted,omitempty"`
	// ClosesAfterResponse: a conn was seen closed right after its response within
	// LearnWindow (afterresponse.go), so non-idempotent requests skip conns that served one
	// request while they are young.
	ClosesAfterResponse bool `json:"closes_after_response,omitempty"`
	// EffectiveIdle is the idle age at which conns are retired; 0 means no reuse.
	EffectiveIdle time.Duration `json:"effective_idle_timeout"`
	// UnsafeMaxIdle is the idle bound for non-idempotent requests now in force.
	UnsafeMaxIdle time.Duration `json:"unsafe_max_idle"`
	// Confident: observed closes pin the backend's close age down (confidence.go); then
	// CloseAge is that age, Margin the gap kept below it, and RaceWindow the further gap kept
	// by non-idempotent requests.
	Confident  bool          `json:"confident"`
	CloseAge   time.Duration `json:"close_age"`
	Margin     time.Duration `json:"margin"`
	RaceWindow time.Duration `json:"race_window"`
	// BeyondAdvertised: Confident, and CloseAge is later than the backend's Keep-Alive
	// timeout, which its observed closes proved conservative (confidence.go).
	BeyondAdvertised bool `json:"beyond_advertised"`
	// ReuseFactor is the self-healing reuse window factor in [0, 1].
	ReuseFactor float64      `json:"reuse_factor"`
	Waiting     int          `json:"waiting"`
	Counters    Counters     `json:"counters"`
	Conns       []ConnInfo   `json:"conns"`
	History     []LifeRecord `json:"history"` // oldest first
}

// OptionsView summarises the options in force.
type OptionsView struct {
	Enabled        bool          `json:"enabled"`
	IdleTimeout    time.Duration `json:"idle_timeout"`
	MaxIdle        int           `json:"max_idle"`
	MaxConns       int           `json:"max_conns"`
	MaxPending     int           `json:"max_pending"`
	QueueTimeout   time.Duration `json:"queue_timeout"`
	MaxRequests    int           `json:"max_requests"`
	MaxLifetime    time.Duration `json:"max_lifetime"`
	Learn          bool          `json:"learn"`
	SafetyFraction float64       `json:"safety_fraction"`
	UnsafeMaxIdle  time.Duration `json:"unsafe_max_idle"`
	Preconnect     bool          `json:"preconnect"`
	// TLS: connections are TLS, verified against ServerName (sent as SNI unless it is an IP
	// address; "" with verification off and no name to send).
	TLS        bool   `json:"tls"`
	ServerName string `json:"server_name,omitempty"`
}

// Counters are cumulative since the pool was created.
type Counters struct {
	Opened        uint64                 `json:"opened"`
	Reused        uint64                 `json:"reused"`
	StaleCaught   uint64                 `json:"stale_caught"` // dead idle conns found before use
	ResetOnReuse  uint64                 `json:"reset_on_reuse"`
	QueueWaits    uint64                 `json:"queue_waits"`
	QueueFull     uint64                 `json:"queue_full"`
	QueueTimeouts uint64                 `json:"queue_timeouts"`
	DialErrors    uint64                 `json:"dial_errors"`
	ClosedBy      map[CloseReason]uint64 `json:"closed_by"`
	// TLS handshakes of the dials that succeeded, full or resumed (a session from the
	// pool's cache), and the dials that failed in the handshake (also in DialErrors): the
	// target's certificate failed verification, or the handshake failed otherwise.
	TLSFull            uint64 `json:"tls_full_handshakes"`
	TLSResumed         uint64 `json:"tls_resumed_handshakes"`
	TLSCertErrors      uint64 `json:"tls_certificate_errors"`
	TLSHandshakeErrors uint64 `json:"tls_handshake_errors"`
	// RequestPathConnects counts the connects a request waited for (Opened minus the
	// preconnects). Preconnects counts connects opened ahead of a request (preconnect.go),
	// PreconnectsUsed those a request then used, PreconnectsWasted those retired unused and
	// PreconnectErrors those that failed. SentinelCloses counts backend closes seen on
	// sentinel conns (sentinel.go).
	RequestPathConnects uint64 `json:"request_path_connects"`
	Preconnects         uint64 `json:"preconnects"`
	PreconnectsUsed     uint64 `json:"preconnects_used"`
	PreconnectsWasted   uint64 `json:"preconnects_wasted"`
	PreconnectErrors    uint64 `json:"preconnect_errors"`
	SentinelCloses      uint64 `json:"sentinel_closes"`
	// Protocol auto (alpn.go): HandedToH2 counts connections dialed here on which the target
	// chose h2, handed to its HTTP/2 pool; FromH2 those dialed for the HTTP/2 pool on which
	// it chose HTTP/1.1, kept here as unused idle ones (also in Opened and Preconnects).
	HandedToH2 uint64 `json:"handed_to_h2,omitempty"`
	FromH2     uint64 `json:"from_h2,omitempty"`
}

// ReuseRatio is the share of requests that found a conn in the pool (reused, or
// preconnected) rather than waiting for a connect of their own; 0 when there was none.
func (c Counters) ReuseRatio() float64 {
	n := c.Reused + c.PreconnectsUsed
	if n+c.RequestPathConnects == 0 {
		return 0
	}
	return float64(n) / float64(n+c.RequestPathConnects)
}

type counters struct {
	opened, reused, staleCaught, resetOnReuse              uint64
	queueWaits, queueFull, queueTimeouts, dialErrors       uint64
	tlsFull, tlsResumed, tlsCertErrors, tlsHandshakeErrors uint64
	pathConnects, preconnects, preconnectsUsed             uint64
	preconnectsWasted, preconnectErrors, sentinelCloses    uint64
	handedH2, fromH2                                       uint64
	closedBy                                               map[CloseReason]uint64
}

// ConnInfo describes one live connection.
type ConnInfo struct {
	ID       uint64        `json:"id"`
	State    string        `json:"state"`   // "idle" or "in_use"
	Created  time.Time     `json:"created"` // when its dial started
	LastUsed time.Time     `json:"last_used"`
	Age      time.Duration `json:"age"`
	IdleAge  time.Duration `json:"idle_age"` // 0 when in use
	Served   int           `json:"served"`
	// LastIdleAge is the idle age at the last checkout (0 for a connection dialed for its
	// first request; a preconnected one's counts from its dial's start): with Served and
	// LastUsed, a reader sampling snapshots sees each reuse.
	LastIdleAge time.Duration `json:"last_idle_age"`
}

// LifeRecord describes a closed connection.
type LifeRecord struct {
	ID          uint64        `json:"id"`
	Created     time.Time     `json:"created"` // when its dial started
	Closed      time.Time     `json:"closed"`
	Served      int           `json:"served"`
	LastIdleAge time.Duration `json:"last_idle_age"` // idle age at the last checkout
	// LastUsed is when its last request ended; for a connection closed while idle,
	// Closed - LastUsed is the idle age at which it was closed.
	LastUsed time.Time   `json:"last_used"`
	Reason   CloseReason `json:"reason"`
}

// Snapshot returns the pool's current state.
func (p *Pool) Snapshot() Snapshot {
	now := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.closed {
		p.maintainLocked(now)
	}
	o := p.opts
	s := Snapshot{
		Addr: p.addr,
		Options: OptionsView{Enabled: o.Enabled, IdleTimeout: o.IdleTimeout, MaxIdle: o.MaxIdle,
			MaxConns: o.MaxConns, MaxPending: o.MaxPending, QueueTimeout: o.QueueTimeout,
			MaxRequests: o.MaxRequests, MaxLifetime: o.MaxLifetime, Learn: o.Learn,
			SafetyFraction: o.SafetyFraction, UnsafeMaxIdle: o.UnsafeMaxIdle, Preconnect: o.Preconnect,
			TLS: p.tls != nil},
		Closed:              p.closed,
		Learned:             p.learn.value,
		LearnedSource:       p.learn.source,
		LearnedEvidence:     p.learn.evidence,
		Provisional:         p.learn.prov.age,
		ProvisionalRefuted:  p.learn.prov.refuted,
		ClosesAfterResponse: p.afterResponseRuleLocked(),
		EffectiveIdle:       p.eff,
		UnsafeMaxIdle:       p.unsafeIdle,
		Confident:           p.conf.ok,
		CloseAge:            p.conf.close,
		Margin:              p.conf.margin,
		RaceWindow:          p.raceWindow(),
		BeyondAdvertised:    p.conf.beyond,
		ReuseFactor:         p.heal.factor,
		Waiting:             len(p.waiters),
		Counters: Counters{Opened: p.stats.opened, Reused: p.stats.reused,
			StaleCaught: p.stats.staleCaught, ResetOnReuse: p.stats.resetOnReuse,
			QueueWaits: p.stats.queueWaits, QueueFull: p.stats.queueFull,
			QueueTimeouts: p.stats.queueTimeouts, DialErrors: p.stats.dialErrors,
			ClosedBy: maps.Clone(p.stats.closedBy),
			TLSFull:  p.stats.tlsFull, TLSResumed: p.stats.tlsResumed,
			TLSCertErrors: p.stats.tlsCertErrors, TLSHandshakeErrors: p.stats.tlsHandshakeErrors,
			RequestPathConnects: p.stats.pathConnects, Preconnects: p.stats.preconnects,
			PreconnectsUsed: p.stats.preconnectsUsed, PreconnectsWasted: p.stats.preconnectsWasted,
			PreconnectErrors: p.stats.preconnectErrors, SentinelCloses: p.stats.sentinelCloses,
			HandedToH2: p.stats.handedH2, FromH2: p.stats.fromH2},
		Conns: make([]ConnInfo, 0, len(p.live)),
	}
	if p.tls != nil {
		s.Options.ServerName = p.tls.ServerName
	}
	for _, c := range p.live {
		ci := ConnInfo{ID: c.ID, State: "in_use", Created: c.created, LastUsed: c.lastUsed,
			Age: now.Sub(c.created), Served: c.served, LastIdleAge: c.idleAtGet}
		switch c.state {
		case stateIdle, stateChecking:
			ci.State, ci.IdleAge = "idle", now.Sub(c.lastUsed)
		case stateSentinel:
			ci.State, ci.IdleAge = "sentinel", now.Sub(c.lastUsed)
		}
		s.Conns = append(s.Conns, ci)
	}
	slices.SortFunc(s.Conns, func(a, b ConnInfo) int { return cmp.Compare(a.ID, b.ID) })
	s.History = append(s.History, p.history[p.histNext:]...)
	s.History = append(s.History, p.history[:p.histNext]...)
	return s
}

// Learned returns the learned backend idle timeout (0 when none), where it came from, and the
// effective idle timeout now in force, without the cost of a Snapshot. Error messages use it
// to tell operators what Sluice believes about the backend.
func (p *Pool) Learned() (learned time.Duration, source string, effective time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.learn.value, p.learn.source, p.eff
}
