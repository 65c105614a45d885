package connpool

// Learning the backend's idle timeout and self-healing. All methods run under the pool
// mutex. The rules are explained in doc.go; in short:
//
//   - header: Keep-Alive timeout=N lowers the learned value at once; a higher N is accepted
//     after 3 responses in a row carried it, and only over a header-sourced value.
//   - observed: an idle close found by the sweep or the checkout check yields a sample (the
//     idle age the conn was last seen alive at). Samples closer than 2 sweep intervals form
//     one event (a restart closes every idle conn at once). A sample is used when a second,
//     distinct event within LearnWindow agrees within 25%: a backend idle timeout recurs at
//     the same age, a restart does not.
//   - failure: a reused conn reset before any response byte: its idle age at checkout
//     lowers the learned value at once when it agrees with it (within 25 % below). Otherwise
//     it is an event like an observation, and, unless a younger conn closed with it (a
//     restart) or it is below half the learned value, a provisional value that bounds
//     non-idempotent requests at once and every request once a second event agrees
//     (provisional.go: a restart resets conns at whatever idle age they have).
//   - growth: a value from observation or failure grows 10% per GrowInterval without new
//     evidence, so a raised backend timeout is re-learned slowly.

import (
	"context"
	"log/slog"
	"time"
)

// Learned value sources, as shown in [Snapshot].
const (
	SourceHeader   = "header"
	SourceObserved = "observed"
	SourceFailure  = "failure"
)

const (
	headerRaiseStreak = 3
	growFactor        = 1.10
	agreeRatio        = 0.75
	maxEvents         = 4
)

type event struct {
	at     time.Time
	sample time.Duration
	hi     time.Duration // the sample's close came at this idle age at the latest
	src    string        // SourceObserved or SourceFailure
}

type learner struct {
	value     time.Duration
	source    string
	lastLower time.Time // last evidence that lowered or confirmed the value
	lastGrow  time.Time
	evidence  string // what set the value, for the log and the Snapshot

	prov provisional // a reset on reuse awaiting a second event (provisional.go)
	// aliveAge is the longest idle age at which the backend was seen keeping a conn (it
	// answered a request, a probe found it alive), seen at aliveSeen; a newer, shorter one
	// replaces it after LearnWindow. deathAge is the youngest idle age at which an idle conn
	// was found closed in the last 2 sweep intervals, seen at deathSeen.
	aliveAge, deathAge   time.Duration
	aliveSeen, deathSeen time.Time
	// answered holds the idle ages of the last answeredKeep reused conns that answered a
	// request (contradictedLocked counts them), written round-robin at answeredN.
	answered  [answeredKeep]sighting
	answeredN int

	// afterResp: when a conn was last seen closed right after its response (afterresponse.go);
	// zero when not within LearnWindow.
	afterResp time.Time

	raiseTo     time.Duration // header value above the learned one, and how often in a row
	raiseStreak int

	events []event
}

type healer struct {
	factor     float64
	failures   []time.Time
	lastFail   time.Time
	lastChange time.Time
}

func (p *Pool) logLearned(old time.Duration, oldSrc, why string) {
	l := &p.learn
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "learned backend idle timeout",
		slog.Duration("learned", l.value), slog.String("source", l.source),
		slog.Duration("previous", old), slog.String("previous_source", oldSrc),
		slog.Duration("effective_idle", p.eff), slog.String("evidence", why))
}

func (p *Pool) setLearnedLocked(v time.Duration, src, why string, now time.Time) {
	l := &p.learn
	old, oldSrc := l.value, l.source
	l.value, l.source, l.evidence = v, src, why
	l.lastLower = now
	if l.prov.age > 0 && float64(l.prov.age) >= agreeRatio*float64(v) {
		l.prov = provisional{} // confirmed, or below what is now learned anyway
	}
	p.recomputeLocked()
	if old != v || oldSrc != src {
		p.logLearned(old, oldSrc, why)
	}
}

// lowerLocked applies evidence v: the learned value becomes min(value, v).
func (p *Pool) lowerLocked(v time.Duration, src, why string, now time.Time) {
	l := &p.learn
	if l.value == 0 || v < l.value {
		p.setLearnedLocked(v, src, why, now)
		return
	}
	l.lastLower, p.due = now, time.Time{} // consistent evidence: keeps growth on hold
}

func (p *Pool) learnHeaderLocked(v time.Duration, now time.Time) {
	if !p.opts.Learn || v <= 0 {
		return
	}
	l := &p.learn
	switch {
	case l.value == 0 || v < l.value:
		l.raiseTo, l.raiseStreak = 0, 0
		if l.value != 0 {
			// The backend says something new: brackets taken under the old value (which
			// may have proved it conservative) must not carry over to this one.
			p.dropBracketsLocked()
		}
		p.setLearnedLocked(v, SourceHeader, "keep-alive header", now)
	case v == l.value:
		l.raiseTo, l.raiseStreak = 0, 0
		if l.source == SourceHeader {
			l.lastLower = now
		}
	case l.source != SourceHeader:
		// The backend was seen closing earlier than it advertises: keep the evidence.
	default:
		if v != l.raiseTo {
			l.raiseTo, l.raiseStreak = v, 0
		}
		l.raiseStreak++
		if l.raiseStreak >= headerRaiseStreak {
			l.raiseTo, l.raiseStreak = 0, 0
			p.setLearnedLocked(v, SourceHeader, "keep-alive header raised consistently", now)
		}
	}
}

// observeLocked records an idle close of c found at now: for the learner, and, with learn
// off too, as evidence of a close right after the response (afterresponse.go).
func (p *Pool) observeLocked(c *Conn, now time.Time) {
	hi := now.Sub(c.lastUsed)
	if p.opts.Learn {
		p.bracketLocked(c, now)
		p.youngDeathLocked(hi, now)
	}
	sample := c.aliveAt.Sub(c.lastUsed)
	if sample <= 0 {
		// Never seen alive in this idle period: the timeout is somewhere in (0, dead age].
		sample = hi / 2
	}
	if sample < p.opts.ReuseFloor && c.served > 0 {
		p.closedAfterResponseLocked(hi, "idle close", now) // afterresponse.go
	}
	if p.opts.Learn {
		p.eventLocked(sample, hi, SourceObserved, now)
	}
}

// eventLocked records an observed close or a reset at idle age sample (the close came by idle
// age hi) and reports whether an earlier event within LearnWindow agreed with it, which
// lowered the learned value (or, contradicted, set a provisional one).
func (p *Pool) eventLocked(sample, hi time.Duration, src string, now time.Time) bool {
	if sample < p.opts.ReuseFloor {
		return false // far too short to be an idle timeout we could honour: a restart or a crash
	}
	l := &p.learn
	n := len(l.events)
	if n > 0 && now.Sub(l.events[n-1].at) <= 2*p.opts.SweepInterval {
		e := &l.events[n-1]
		e.at = now
		if sample < e.sample {
			e.sample, e.hi, e.src = sample, hi, src
		}
	} else {
		if n == maxEvents {
			copy(l.events, l.events[1:])
			l.events = l.events[:n-1]
		}
		l.events = append(l.events, event{at: now, sample: sample, hi: hi, src: src})
	}
	last := l.events[len(l.events)-1]
	for _, e := range l.events[:len(l.events)-1] {
		if now.Sub(e.at) > p.opts.LearnWindow {
			continue
		}
		lo, hi := min(e.sample, last.sample), max(e.sample, last.sample)
		if float64(lo) < agreeRatio*float64(hi) {
			continue
		}
		if why := p.contradictedLocked(lo, now); why != "" {
			// Conns outlived that age: a timer there would have closed them. Only what
			// cannot be re-sent is kept from it (provisional.go).
			p.setProvisionalLocked(lo, agreeing(e, last)+", but "+why, now)
			return true
		}
		p.lowerLocked(lo, src, agreeing(e, last), now)
		return true
	}
	return false
}

// agreeing names the two agreeing events that set a learned value.
func agreeing(a, b event) string {
	name := func(e event) string {
		if e.src == SourceFailure {
			return "reset on reuse at idle " + e.sample.Round(time.Millisecond).String()
		}
		return "idle close at " + e.sample.Round(time.Millisecond).String()
	}
	return "two events within 25%: " + name(a) + ", then " + name(b)
}

// failureLocked records a reused conn reset before any response byte; gotAt is when the
// request took the conn. The rule is explained in provisional.go.
func (p *Pool) failureLocked(idleAge time.Duration, gotAt, now time.Time) {
	p.healFailureLocked(gotAt, now)
	if !p.opts.Learn || idleAge < p.opts.ReuseFloor {
		return
	}
	l := &p.learn
	switch {
	case l.value != 0 && idleAge >= l.value:
		l.lastLower = now // consistent evidence: keeps growth on hold (healFailureLocked reset p.due)
		return
	case l.value != 0 && float64(idleAge) >= agreeRatio*float64(l.value):
		p.lowerLocked(idleAge, SourceFailure, "reset on reuse at idle "+idleAge.Round(time.Millisecond).String()+
			", within 25% of the learned value", now)
		return
	case p.restartLocked(idleAge, now):
		p.notLearnedLocked(idleAge, "a younger idle conn closed with it (a restart)")
		return
	}
	if p.eventLocked(idleAge, idleAge, SourceFailure, now) || l.value != 0 && idleAge < l.value/2 {
		return // learned (or provisional: contradicted), or an outlier far below the learned value
	}
	p.setProvisionalLocked(idleAge, "reset on reuse at idle "+idleAge.Round(time.Millisecond).String(), now)
}

func (p *Pool) notLearnedLocked(idleAge time.Duration, why string) {
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "reset on reuse not taken for the backend idle timeout",
		slog.Duration("idle_age", idleAge), slog.String("why", why),
		slog.Duration("alive_idle_age", p.learn.aliveAge), slog.Duration("learned", p.learn.value))
}

// growLocked lets a value learned from observation or failure grow slowly.
func (p *Pool) growLocked(now time.Time) {
	l := &p.learn
	if l.value == 0 || l.source == SourceHeader {
		return
	}
	if now.Sub(l.lastLower) < p.opts.GrowInterval || now.Sub(l.lastGrow) < p.opts.GrowInterval {
		return
	}
	limit := p.growLimit()
	if l.value >= limit {
		return
	}
	old := l.value
	l.value = min(limit, time.Duration(float64(l.value)*growFactor))
	l.lastGrow = now
	p.recomputeLocked()
	p.logLearned(old, l.source, "no new evidence: growing")
}

// healFailureLocked counts a failure toward HealThreshold. A request that already held its
// conn when the previous failure was seen fails with it, not after it: a restart or a crash
// resets every conn in flight at once, and that is one event, not a reason to halve reuse
// (the backend's idle timer, which healing answers, fails requests one reuse at a time).
func (p *Pool) healFailureLocked(gotAt, now time.Time) {
	h := &p.heal
	same := !h.lastFail.IsZero() && gotAt.Before(h.lastFail)
	h.lastFail, p.due = now, time.Time{}
	if same {
		return
	}
	keep := h.failures[:0]
	for _, t := range h.failures {
		if now.Sub(t) < p.opts.HealWindow {
			keep = append(keep, t)
		}
	}
	h.failures = append(keep, now)
	if len(h.failures) < p.opts.HealThreshold || h.factor == 0 {
		return
	}
	h.failures = h.failures[:0]
	old := h.factor
	h.factor /= 2
	if h.factor < 1.0/8 {
		h.factor = 0
	}
	h.lastChange = now
	p.recomputeLocked()
	p.log.LogAttrs(context.Background(), slog.LevelWarn, "reused connections keep failing: shrinking reuse window",
		slog.Int("failures", p.opts.HealThreshold), slog.Duration("window", p.opts.HealWindow),
		slog.Float64("factor", h.factor), slog.Float64("previous_factor", old),
		slog.Duration("effective_idle", p.eff), slog.Duration("learned", p.learn.value))
}

func (p *Pool) healRecoverLocked(now time.Time) {
	h := &p.heal
	if h.factor >= 1 || now.Sub(h.lastFail) < p.opts.HealQuiet || now.Sub(h.lastChange) < p.opts.HealQuiet {
		return
	}
	old := h.factor
	h.factor = min(1, max(1.0/8, h.factor*2))
	h.lastChange = now
	p.recomputeLocked()
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "no failures on reused connections: growing reuse window",
		slog.Duration("quiet", p.opts.HealQuiet), slog.Float64("factor", h.factor),
		slog.Float64("previous_factor", old), slog.Duration("effective_idle", p.eff))
}

// recomputeLocked refreshes the effective idle timeout and the unsafe reuse threshold. With
// confidence in the learned value (confidence.go) both come from the observed close age and
// its margins instead of SafetyFraction and UnsafeMaxIdle.
func (p *Pool) recomputeLocked() {
	p.due = time.Time{} // the rules' inputs changed: maintainLocked looks again
	p.confidentLocked()
	k := &p.conf
	eff := p.opts.IdleTimeout
	p.effLearned = false
	if p.learn.value > 0 {
		v := time.Duration(p.opts.SafetyFraction * float64(p.learn.value))
		if k.ok {
			v = k.close - k.margin
		}
		if v < eff {
			eff, p.effLearned = v, true
		}
	}
	f := p.heal.factor
	eff = time.Duration(float64(eff) * f)
	if eff < p.opts.ReuseFloor {
		eff = 0
	}
	p.eff = eff
	p.unsafeIdle = min(p.opts.UnsafeMaxIdle, eff/unsafeShare)
	if k.ok && p.opts.UnsafeMaxIdle > 0 {
		u := time.Duration(float64(k.close-k.margin-unsafeRaces*p.raceWindow()) * f)
		p.unsafeIdle = max(p.unsafeIdle, min(u, eff))
	}
	p.unsafeBase = p.unsafeIdle
	if a := p.learn.prov.age; a > 0 {
		// A provisional value bounds non-idempotent requests as a learned one would.
		v := time.Duration(p.opts.SafetyFraction * float64(a) * f)
		if v < p.opts.ReuseFloor {
			v = 0
		}
		p.unsafeIdle = min(p.unsafeIdle, v/unsafeShare)
	}
}

// maintainLocked runs the time-driven rules (healing's recovery, the growth of a learned or
// provisional value) once one may be due, and otherwise costs one comparison: it runs under
// the pool mutex on every Get and Release.
func (p *Pool) maintainLocked(now time.Time) {
	if now.Before(p.due) {
		return
	}
	p.healRecoverLocked(now)
	p.expireAfterResponseLocked(now) // with learn off too (afterresponse.go)
	if p.opts.Learn {
		p.growLocked(now)
		p.growProvisionalLocked(now)
	}
	p.due = p.dueLocked()
}

// never is a due time no rule reaches.
var never = time.Unix(1<<62, 0)

// dueLocked is the earliest time a rule of maintainLocked may act, judged by the state now.
// Every change of that state resets p.due (recomputeLocked, or where a failure or evidence
// is noted), so maintainLocked recomputes it: a due found early costs one more check, none
// is found late.
func (p *Pool) dueLocked() time.Time {
	due := never
	if h := &p.heal; h.factor < 1 {
		due = latest(h.lastFail, h.lastChange).Add(p.opts.HealQuiet)
	}
	if at := p.learn.afterResp; !at.IsZero() {
		due = earliest(due, at.Add(p.opts.LearnWindow+time.Nanosecond))
	}
	if !p.opts.Learn {
		return due
	}
	if l := &p.learn; l.value != 0 && l.source != SourceHeader && l.value < p.growLimit() {
		due = earliest(due, latest(l.lastLower, l.lastGrow).Add(p.opts.GrowInterval))
	}
	if pr := &p.learn.prov; pr.age != 0 {
		due = earliest(due, latest(pr.at.Add(p.opts.LearnWindow), pr.grown.Add(p.opts.GrowInterval)))
	}
	return due
}

// growLimit is how far a learned or provisional value grows back without evidence.
func (p *Pool) growLimit() time.Duration {
	return time.Duration(float64(p.opts.IdleTimeout) / p.opts.SafetyFraction)
}

func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earliest(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
