package h2pool

import (
	"maps"
	"time"
)

// Counters are a pool's totals since it was created.
type Counters struct {
	Dials        int64 `json:"dials"`
	DialFailures int64 `json:"dial_failures"`
	// Streams counts the streams started.
	Streams int64 `json:"streams"`
	// Unprocessed counts streams the backend provably did not process (GOAWAY above them,
	// REFUSED_STREAM, connection unusable); the proxy sent each again.
	Unprocessed int64 `json:"unprocessed"`
	// PingChecks counts PINGs before a stream on an idle connection; ReadIdlePings those
	// sent after ReadIdleTimeout; PingFailures those unanswered.
	PingChecks    int64 `json:"ping_checks"`
	ReadIdlePings int64 `json:"read_idle_pings"`
	PingFailures  int64 `json:"ping_failures"`
	// ProtocolChanges counts the ALPN answers of an auto pool's target that differed from
	// the one before (the first answer included); Adopted the h2 connections the HTTP/1.1
	// pool dialed and handed over (also counted in Dials).
	ProtocolChanges int64 `json:"protocol_changes"`
	Adopted         int64 `json:"adopted"`
	// Replacements counts the connections dialed ahead for one retiring at max_requests or
	// max_lifetime (also counted in Dials).
	Replacements int64 `json:"replacement_dials"`
	// DialWaits counts requests that found no connection able to take their stream and
	// waited for one being dialed that could (a cold pool's burst, or a replacement not
	// ready in time). SlotWaits counts those that waited for a stream slot instead: every
	// connection full at MaxConns, and no dial on its way for them (burst.go). A request
	// counts once in each at most.
	DialWaits int64 `json:"dial_waits"`
	SlotWaits int64 `json:"slot_waits"`
	// TLSFull and TLSResumed count the TLS handshakes of the pool's own dials (protocol h2)
	// that succeeded, full or resumed; TLSCertErrors and TLSHandshakeErrors those that
	// failed, by reason (upstream_tls_certificate, upstream_tls_handshake). An auto pool's
	// dials are the HTTP/1.1 pool's, counted there.
	TLSFull            int64 `json:"tls_full_handshakes"`
	TLSResumed         int64 `json:"tls_resumed_handshakes"`
	TLSCertErrors      int64 `json:"tls_certificate_errors"`
	TLSHandshakeErrors int64 `json:"tls_handshake_errors"`
}

// ConnInfo describes an open connection.
type ConnInfo struct {
	ID      uint64    `json:"id"`
	Created time.Time `json:"created"`
	// Streams counts the streams it carried; Active those open now.
	Streams int64 `json:"streams"`
	Active  int   `json:"active_streams"`
	// MaxConcurrentStreams is the backend's SETTINGS_MAX_CONCURRENT_STREAMS (0 before its
	// SETTINGS came).
	MaxConcurrentStreams uint32 `json:"max_concurrent_streams"`
	// IdleSince is when it last carried no stream (zero while streams are open).
	IdleSince time.Time `json:"idle_since"`
	// Closing: a GOAWAY came; no new stream goes on it.
	Closing bool `json:"closing"`
	// Retiring is max_requests or max_lifetime once it reached that limit: no new stream
	// goes on it, and it is closed when its streams end.
	Retiring CloseReason `json:"retiring,omitempty"`
	// Spare: dialed ahead to replace a retiring connection, unused until needed.
	Spare bool `json:"spare,omitempty"`
}

// LifeRecord describes a closed connection.
type LifeRecord struct {
	ID      uint64      `json:"id"`
	Created time.Time   `json:"created"`
	Closed  time.Time   `json:"closed"`
	Streams int64       `json:"streams"`
	Reason  CloseReason `json:"reason"`
	// GoAwayCode and GoAwayLastStreamID are the backend's GOAWAY, when one came.
	GoAwayCode         string `json:"goaway_code,omitempty"`
	GoAwayLastStreamID uint32 `json:"goaway_last_stream_id,omitempty"`
	// Refused counts its streams refused (REFUSED_STREAM); Resets other stream resets.
	Refused int64 `json:"refused_streams"`
	Resets  int64 `json:"stream_resets"`
}

// Snapshot is a pool's state for the admin API and metrics.
type Snapshot struct {
	Addr     string `json:"addr"`
	Protocol string `json:"protocol"` // "h2", "h2c" or "auto"
	// Negotiated is an auto pool's target's latest ALPN answer: "h2", "http/1.1", or ""
	// before the first; requests go to the HTTP/1.1 pool while it is "http/1.1".
	Negotiated string `json:"negotiated,omitempty"`
	Closed     bool   `json:"closed"`
	// MaxRequests and MaxLifetime are the connection limits (keepalive.max_requests,
	// max_lifetime; 0: none).
	MaxRequests int64         `json:"max_requests"`
	MaxLifetime time.Duration `json:"max_lifetime"`
	// MaxConns bounds the connections that take streams (h2.max_conns; 0: none), and
	// MaxDraining how many draining ones are kept beyond it (h2.max_draining). Draining
	// counts the open connections that take no new streams (retiring, or after a GOAWAY)
	// and are kept for their streams in flight (slots.go).
	MaxConns    int `json:"max_conns"`
	MaxDraining int `json:"max_draining"`
	Draining    int `json:"draining"`
	// Learned is the learned backend idle timeout (0: none); EffectiveIdle the idle time
	// after which connections are closed (0: never).
	Learned       time.Duration         `json:"learned_idle_timeout"`
	EffectiveIdle time.Duration         `json:"effective_idle_timeout"`
	Counters      Counters              `json:"counters"`
	Closes        map[CloseReason]int64 `json:"closes"`
	Conns         []ConnInfo            `json:"conns"`
	History       []LifeRecord          `json:"history"` // oldest first
}

// Snapshot returns the pool's current state.
func (p *Pool) Snapshot() Snapshot {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := Snapshot{Addr: p.addr, Protocol: "h2c", Closed: p.closed, Learned: p.learned,
		MaxRequests: p.opts.MaxRequests, MaxLifetime: p.opts.MaxLifetime,
		EffectiveIdle: p.effectiveIdleLocked(), Counters: p.counters, Closes: maps.Clone(p.closes)}
	s.MaxConns, s.MaxDraining = p.opts.MaxConns, p.opts.MaxDraining
	_, s.Draining = p.slotsLocked()
	switch {
	case p.opts.Auto:
		s.Protocol, s.Negotiated = "auto", p.Negotiated()
	case p.opts.TLS != nil:
		s.Protocol = "h2"
	}
	for _, c := range p.conns {
		if c.gone {
			continue
		}
		st := c.cc.State()
		ci := ConnInfo{ID: c.id, Created: c.created, Streams: c.streams.Load(), Active: int(c.active.Load()),
			MaxConcurrentStreams: st.MaxConcurrentStreams, Closing: st.Closing || c.dead,
			Retiring: c.retiring, Spare: c.spare}
		if ci.Active == 0 {
			ci.IdleSince = time.Unix(0, c.idleSince.Load())
		}
		s.Conns = append(s.Conns, ci)
	}
	first := max(0, p.histN-historyLen)
	for i := first; i < p.histN; i++ {
		s.History = append(s.History, p.history[i%historyLen])
	}
	return s
}
