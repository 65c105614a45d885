package connpool

// Confidence in the learned idle timeout (issue #20). The learned value L is a conservative
// lower bound (the smallest agreeing sample, or a header), so the pool uses 0.85*L and lets
// non-idempotent requests reuse only conns idle less than min(UnsafeMaxIdle, effective/4).
// Once the backend's closes have been seen, the pool knows more than L:
//
//   - Every idle close the sweep or the checkout check finds brackets the backend's close age
//     (by this pool's clock, from the release of the conn): lo = the idle age at which the conn
//     was last seen alive (at least ReuseFloor), hi = the idle age at which it was found
//     closed. The pool keeps the last closeKeep brackets and counts those that agree with L
//     (lo >= 0.75*L: a restart or crash closes conns early and is not an idle timeout).
//   - Confident: at least closeConfirm such brackets, all overlapping give or take noise
//     (max lo <= min hi + max(minMargin, max lo/8): one close age, up to scheduling noise,
//     explains every observation; on a loaded machine the backend's idle clock and this
//     pool's drift apart by tens of milliseconds), and no reset on a reused conn since they
//     were taken (a reset clears them: the backend is closing earlier than its FINs say,
//     e.g. it races its timer).
//   - Then close = max lo (each bracket's lo is a moment the backend had not closed yet), but
//     never above L when L came from a reset on reuse (the backend showed that it closes
//     sooner), nor when L came from a Keep-Alive header, unless the brackets prove the
//     header conservative (below); the margin is the width of the overlap
//     (min hi - max lo: how little the observations pin the close down), at least minMargin
//     (scheduling noise on both sides), plus how far the brackets miss each other when they
//     do, and effective = close - margin.
//   - A non-idempotent request reuses a conn when its remaining life is comfortably above the
//     race window: idle < close - margin - 2*race, where race is the widest gap measured
//     between a close and a reset on reuse (a backend that drops requests arriving just before
//     its timer), and at least SweepInterval (the resolution of the observations themselves)
//     before any was measured. UnsafeMaxIdle stays the bound while the pool is not confident,
//     and 0 still means that such requests never reuse a connection.
//
//   - Beyond the advertisement: a backend may close later than its Keep-Alive header says
//     (Node adds a buffer, 1 s in Node 20 and keepAliveTimeoutBuffer since 24.6, to the
//     keepAliveTimeout it advertises: nodejs/node#59243). When L is a header value and at least beyondConfirm
//     agreeing brackets all saw the conn alive at least max(margin, L/4) past L, the close
//     age is the observed one like any backend's that says nothing; the per-conn header
//     cap is lifted with it. Every rule above still holds: a reset on reuse drops the
//     brackets (back to the header until they are earned again), a close earlier than the
//     others breaks the agreement, and a lower advertised value drops the brackets taken
//     under the old one. A backend that advertises exactly what it keeps shows brackets at
//     or below L and is not affected, nor one that advertises more than it keeps.
//
// Brackets come from idle closes; once the pool retires conns before the backend closes them,
// no more are seen. So while fewer than closeKeep brackets are kept, a conn retired by the
// learned timeout is kept open as a sentinel (never handed out; see sentinel.go) and probed
// until the backend closes it, which adds a bracket at no cost to any request.

import (
	"context"
	"log/slog"
	"time"
)

const (
	closeKeep    = 8 // brackets kept
	closeConfirm = 2 // brackets needed for confidence
	// beyondConfirm: brackets needed to use a close age later than an advertised timeout.
	beyondConfirm = 3
	// unsafeRaces: a non-idempotent request keeps this many race windows between its
	// conn's idle age and the close age (and the margin). One is what was measured; the
	// second absorbs what this pool's clock cannot see: the backend's idle clock starts when
	// it wrote the response, this pool's when the proxy finished relaying it, and on a
	// loaded machine that is tens of milliseconds later.
	unsafeRaces = 2
)

// bracket is the idle age of one observed backend close: after lo, not after hi.
type bracket struct {
	lo, hi time.Duration
}

// confidence is the state derived from the brackets, refreshed by recomputeLocked.
type confidence struct {
	brackets []bracket
	race     time.Duration // widest close-to-reset gap measured; 0: none yet
	ok       bool
	close    time.Duration // the backend's close age when ok
	margin   time.Duration
	beyond   bool // ok, and close is later than the advertised timeout (L from a header)
}

// minMargin is the least margin below a confidently known close age.
func (o *Options) minMargin() time.Duration {
	return max(2*o.ReuseFloor, o.SweepInterval/4)
}

// bracketLocked records one observed idle close of c found at now (c.aliveAt is the last time
// it was seen alive).
func (p *Pool) bracketLocked(c *Conn, now time.Time) {
	if !p.opts.Learn {
		return
	}
	b := bracket{lo: c.aliveAt.Sub(c.lastUsed), hi: now.Sub(c.lastUsed)}
	if b.lo < p.opts.ReuseFloor {
		return // never seen alive late enough to bound anything useful
	}
	k := &p.conf
	if len(k.brackets) == closeKeep {
		copy(k.brackets, k.brackets[1:])
		k.brackets = k.brackets[:closeKeep-1]
	}
	k.brackets = append(k.brackets, b)
	p.recomputeLocked()
}

// resetSeenLocked records a reset on a reused conn checked out at idle age: the backend
// closes earlier than its FINs said. The brackets are dropped (confidence must be earned
// again) and the race window widened to what this reset shows.
func (p *Pool) resetSeenLocked(idle time.Duration) {
	k := &p.conf
	if k.ok && idle < k.close {
		k.race = max(k.race, k.close-idle)
	}
	p.dropBracketsLocked()
	// Recompute now: past an advertised timeout the reset's idle age may be above the
	// learned value, which then does not change (and would not recompute).
	p.recomputeLocked()
}

// confidentLocked refreshes p.conf from the brackets and the learned value.
func (p *Pool) confidentLocked() {
	k := &p.conf
	was := k.beyond
	k.ok, k.beyond = false, false
	defer func() {
		if k.beyond != was {
			p.log.LogAttrs(context.Background(), slog.LevelInfo, "observed idle closes and the advertised timeout",
				slog.Bool("beyond_advertised", k.beyond), slog.Duration("learned", p.learn.value), slog.String("learned_source", p.learn.source),
				slog.Duration("close_age", k.close), slog.Duration("margin", k.margin),
				slog.Int("brackets", len(k.brackets)))
		}
	}()
	l := p.learn.value
	if !p.opts.Learn || l == 0 {
		return
	}
	lo, hi, least, n := time.Duration(0), time.Duration(1<<62), time.Duration(1<<62), 0
	for _, b := range k.brackets {
		if float64(b.lo) < agreeRatio*float64(l) {
			continue // an early close (restart, crash): not the idle timeout
		}
		lo, hi, least, n = max(lo, b.lo), min(hi, b.hi), min(least, b.lo), n+1
	}
	mm := p.opts.minMargin()
	if n < closeConfirm || lo > hi+max(mm, lo/8) {
		return // the closes do not come at one age, give or take scheduling noise
	}
	k.margin = max(mm, hi-lo) + max(0, lo-hi)
	switch {
	case p.learn.source == SourceObserved:
	case p.learn.source == SourceHeader && n >= beyondConfirm && least >= l+max(k.margin, l/4):
		k.beyond = true // every close seen came well after the advertised timeout
	default:
		lo = min(lo, l) // an advertised timeout, or a reset, says the backend closes sooner
	}
	k.ok, k.close = true, lo
}

// dropBracketsLocked forgets the brackets: what they showed may no longer hold.
func (p *Pool) dropBracketsLocked() {
	p.conf.brackets = p.conf.brackets[:0]
}

// raceWindow is the gap kept between a non-idempotent request and the backend's close.
func (p *Pool) raceWindow() time.Duration {
	return max(p.opts.SweepInterval, p.conf.race)
}
