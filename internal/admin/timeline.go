package admin

import (
	"sync"
	"time"

	"sluice/internal/connpool"
)

// The pool timeline (/admin/upstreams/{id}/timeline) draws every connection's life: opened,
// each reuse with its idle age, closed with its reason. The pool keeps, per live
// connection, its request count, the end of its last request and the idle age at its last
// checkout, and a life record per closed connection with the same facts; it keeps no list of
// reuses. The admin side rebuilds them by comparing the snapshot of each poll with the one
// before (the dashboard polls once a second), so the data path does nothing for the
// timeline:
//
//   - a connection whose checkouts (requests served, plus one while in use) went up by one
//     was reused once; if it is in use now, or was idle at the last poll, the reuse began at
//     (end of the previous request + idle age at checkout): the mark is exact;
//   - otherwise (several checkouts between two polls, or a connection first seen after its
//     reuses) one mark stands for them with their count and the idle age of the latest, at
//     the end of the latest one's request (exact: false; off by that request's duration);
//   - a closed connection's record adds what no poll saw the same way.
//
// Nothing is sampled while no one polls.

const (
	timelineReuses = 64 // reuse marks kept per connection, the latest
	timelineIdle   = 300
	// checkSlack bounds the time from a checkout to the close its reuse check causes.
	checkSlack = 20 * time.Millisecond
)

// timelines keeps what the polls saw, per upstream and target.
type timelines struct {
	mu      sync.Mutex
	targets map[string]*targetLine // "upstream target"
}

type targetLine struct {
	conns map[uint64]*connLine
	idle  []idlePoint // learned and effective idle timeouts as polled
	seen  time.Time
}

type connLine struct {
	checkouts int
	inUse     bool
	lastUsed  time.Time
	reuses    []reuseMark
}

// reuseMark is one reuse (or Count reuses between two polls) of a connection.
type reuseMark struct {
	Time    time.Time `json:"time"`
	IdleAge float64   `json:"idle_age_seconds"` // of the latest reuse it stands for; -1: not known
	Count   int       `json:"count"`
	Exact   bool      `json:"exact"` // Time is when the reuse began, not the poll
}

type idlePoint struct {
	Time      time.Time `json:"time"`
	Learned   float64   `json:"learned_seconds"`
	Effective float64   `json:"effective_seconds"`
	Source    string    `json:"source"`
}

// lineConn is one connection on the timeline.
type lineConn struct {
	ID     uint64     `json:"id"`
	Opened time.Time  `json:"opened"`
	Closed *time.Time `json:"closed,omitempty"`
	State  string     `json:"state"` // idle, in_use or closed
	// Reason is why it was closed; ClosedIdle the idle age at close when it was closed
	// between requests (the end of its last request to its close).
	Reason      string      `json:"reason,omitempty"`
	ClosedIdle  float64     `json:"closed_idle_seconds,omitempty"`
	Requests    int         `json:"requests_served"`
	LastIdleAge float64     `json:"last_idle_age_seconds"`
	Reuses      []reuseMark `json:"reuses"`
}

// lineView is one target's timeline.
type lineView struct {
	Address       string                          `json:"address"`
	Now           time.Time                       `json:"now"`
	Learned       float64                         `json:"learned_idle_timeout_seconds"`
	LearnedSource string                          `json:"learned_source"`
	Effective     float64                         `json:"effective_idle_timeout_seconds"`
	ReuseFactor   float64                         `json:"reuse_factor"`
	Opened        uint64                          `json:"opened"`
	Reused        uint64                          `json:"reused"`
	StaleCaught   uint64                          `json:"stale_caught"`
	ResetOnReuse  uint64                          `json:"reset_on_reuse"`
	ClosedBy      map[connpool.CloseReason]uint64 `json:"closed_by"`
	IdleTimeouts  []idlePoint                     `json:"idle_timeouts"`
	Connections   []lineConn                      `json:"connections"` // by id
}

func newTimelines() *timelines { return &timelines{targets: map[string]*targetLine{}} }

// observe folds the targets' snapshots into the timelines of upstream and returns them.
func (tl *timelines) observe(upstream string, ts []Target, now time.Time) []lineView {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	for k, l := range tl.targets { // targets nobody looked at for a while
		if now.Sub(l.seen) > 10*time.Minute {
			delete(tl.targets, k)
		}
	}
	out := make([]lineView, len(ts))
	for i := range ts {
		key := upstream + " " + ts[i].Address
		l := tl.targets[key]
		if l == nil {
			l = &targetLine{conns: map[uint64]*connLine{}}
			tl.targets[key] = l
		}
		out[i] = l.observe(&ts[i].Pool, now)
	}
	return out
}

func (l *targetLine) observe(s *connpool.Snapshot, now time.Time) lineView {
	l.seen = now
	ip := idlePoint{Time: now, Learned: s.Learned.Seconds(), Effective: s.EffectiveIdle.Seconds(), Source: s.LearnedSource}
	if n := len(l.idle); n == 0 || l.idle[n-1].Learned != ip.Learned || l.idle[n-1].Effective != ip.Effective {
		l.idle = append(l.idle, ip)
		if len(l.idle) > timelineIdle {
			l.idle = l.idle[1:]
		}
	}
	v := lineView{Address: s.Addr, Now: now, Learned: ip.Learned, LearnedSource: s.LearnedSource,
		Effective: ip.Effective, ReuseFactor: s.ReuseFactor, Opened: s.Counters.Opened,
		Reused: s.Counters.Reused, StaleCaught: s.Counters.StaleCaught, ResetOnReuse: s.Counters.ResetOnReuse,
		ClosedBy: s.Counters.ClosedBy, IdleTimeouts: append([]idlePoint{}, l.idle...),
		Connections: make([]lineConn, 0, len(s.History)+len(s.Conns))}
	if v.ClosedBy == nil {
		v.ClosedBy = map[connpool.CloseReason]uint64{}
	}
	keep := make(map[uint64]bool, len(s.Conns)+len(s.History))
	for _, h := range s.History {
		keep[h.ID] = true
		lc := lineConn{ID: h.ID, Opened: h.Created, State: "closed", Reason: string(h.Reason),
			Requests: h.Served, LastIdleAge: h.LastIdleAge.Seconds(), Reuses: []reuseMark{}}
		closed := h.Closed
		lc.Closed = &closed
		if !h.LastUsed.IsZero() && h.Served > 0 && isIdleClose(h.Reason) {
			lc.ClosedIdle = h.Closed.Sub(h.LastUsed).Seconds()
		}
		seen := 1 // checkouts a poll saw; the first is no reuse
		if cl := l.conns[h.ID]; cl != nil {
			lc.Reuses = append(lc.Reuses, cl.reuses...)
			seen = max(seen, cl.checkouts)
		}
		if n := h.Served - seen; n > 0 && h.Served >= 2 {
			m := reuseMark{Time: h.LastUsed, IdleAge: h.LastIdleAge.Seconds(), Count: n}
			switch {
			case !isIdleClose(h.Reason): // closed during its last request, which began then
				m.Time, m.Exact = h.LastUsed.Add(h.LastIdleAge), n == 1
			case h.LastIdleAge >= h.Closed.Sub(h.LastUsed)-checkSlack:
				// The last checkout was the one that found it dead (the reuse check, just
				// before the close): its idle age is the close's, not the last reuse's,
				// which is unknown.
				m.IdleAge = -1
			}
			lc.Reuses = append(lc.Reuses, m)
		}
		v.Connections = append(v.Connections, lc)
	}
	for _, c := range s.Conns {
		keep[c.ID] = true
		cl := l.conn(&c, now)
		v.Connections = append(v.Connections, lineConn{ID: c.ID, Opened: c.Created, State: c.State,
			Requests: c.Served, LastIdleAge: c.LastIdleAge.Seconds(), Reuses: append([]reuseMark{}, cl.reuses...)})
	}
	for id := range l.conns {
		if !keep[id] {
			delete(l.conns, id)
		}
	}
	return v
}

// isIdleClose reports whether a connection closed for reason was idle when it closed.
func isIdleClose(r connpool.CloseReason) bool {
	switch r {
	case connpool.CloseIdleTimeout, connpool.CloseLearnedTimeout, connpool.CloseBackendClosedIdle,
		connpool.CloseUnsolicitedData, connpool.CloseMaxLifetime, connpool.ClosePoolFull,
		connpool.CloseShutdown, connpool.CloseConfigChange, connpool.CloseReuseSuspended, connpool.CloseEvicted:
		return true
	}
	return false
}

// conn updates the line of a live connection from its snapshot and returns it.
func (l *targetLine) conn(c *connpool.ConnInfo, now time.Time) *connLine {
	inUse := c.State == "in_use"
	k := c.Served
	if inUse {
		k++
	}
	cl := l.conns[c.ID]
	if cl == nil {
		cl = &connLine{reuses: []reuseMark{}}
		l.conns[c.ID] = cl
		switch {
		case inUse && k >= 2: // in a reuse now: it began at the end of the last request + idle age
			if k > 2 {
				cl.add(reuseMark{Time: c.LastUsed, Count: k - 2, IdleAge: -1})
			}
			cl.add(reuseMark{Time: c.LastUsed.Add(c.LastIdleAge), IdleAge: c.LastIdleAge.Seconds(), Count: 1, Exact: true})
		case k >= 2: // reused before this first poll; the latest ended at LastUsed
			cl.add(reuseMark{Time: c.LastUsed, IdleAge: c.LastIdleAge.Seconds(), Count: k - 1})
		}
	} else if n := k - cl.checkouts; n > 0 {
		reuses := min(n, k-1) // the first checkout of a connection is no reuse
		if reuses > 0 {
			m := reuseMark{Time: c.LastUsed, IdleAge: c.LastIdleAge.Seconds(), Count: reuses}
			switch {
			case inUse: // the latest began at the end of the previous request + its idle age
				m.Time, m.Exact = c.LastUsed.Add(c.LastIdleAge), n == 1
			case n == 1 && !cl.inUse:
				m.Time, m.Exact = cl.lastUsed.Add(c.LastIdleAge), true
			}
			cl.add(m)
		}
	}
	cl.checkouts, cl.inUse, cl.lastUsed = k, inUse, c.LastUsed
	return cl
}

func (cl *connLine) add(m reuseMark) {
	cl.reuses = append(cl.reuses, m)
	if len(cl.reuses) > timelineReuses {
		cl.reuses = cl.reuses[len(cl.reuses)-timelineReuses:]
	}
}
