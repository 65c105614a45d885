package connpool

// What one reset on reuse may teach. All methods run under the pool mutex.
//
// A reused conn reset before any response byte, right after checkout (failureLocked), is what
// the backend's idle timer crossing a request looks like. It is also what a backend restart, a
// crash, or a load balancer dropping connections looks like when it meets a request: those
// reset conns of every idle age, and the idle age of the conn that happened to carry a request
// says nothing about a timer. Taken at once as the learned value, one such reset taught the
// pool whatever its traffic's gap was (50 ms for a client sending every 50 ms), and the pool
// then dialed for nearly every request until the value grew back, 10 % a minute.
//
// So a reset that is the only evidence of its age is provisional:
//
//   - At once it bounds non-idempotent requests exactly as a learned value would: they reuse
//     only conns idle less than min(UnsafeMaxIdle, 0.85 x age / 4) (recomputeLocked). A POST,
//     which cannot be re-sent, is protected from the first reset on, as before.
//   - Idempotent requests keep the idle timeout they had: if the reset was the timer, the next
//     request that crosses it fails before any response byte and is re-sent on a fresh conn.
//   - It becomes the learned value (source "failure") when a second event agrees with it
//     within 25 % inside LearnWindow, another reset or an observed idle close (eventLocked):
//     a timer recurs at the same age, a restart does not. An observed close that agreed
//     earlier confirms it at once.
//   - It is refuted when the backend shows that it does not close every conn at that age (the
//     model the observation rule and the brackets share: a backend's timer closes conns at one
//     age, give or take 25 %, and a request crossing it arrives within that band): a reused
//     conn answered, or an idle conn was probed alive, at an idle age of at least
//     refuteAge(age) = max(age/0.75, age + minMargin) (noteAliveLocked). Refuted, it can no
//     longer be confirmed, but it still bounds non-idempotent requests, except on a conn that
//     was itself seen alive at least as long (unsafeOKLocked): the conns behind one address
//     may have different timers (a Service over pods with different keep-alive timeouts), and
//     one conn outliving the age says nothing of the others.
//   - It is dropped when an idle conn younger than 0.75 x age is found closed within 2 sweep
//     intervals of the reset (a restart closes conns of every age, a timer only those older
//     than it: youngDeathLocked). When LearnWindow passes without a second event it is not
//     dropped but grows back as a learned value does without evidence, 10 % per
//     GrowInterval, and is dropped when it reaches the configured idle timeout's reach
//     (growProvisionalLocked): a real short timer that traffic stops crossing must not hand
//     POSTs their full reuse back at once (the old failure rule's learned value grew the same
//     way).
//
// The same evidence applies to the events the observation rule keeps: an event (reset or
// observed close) whose age a later live conn contradicts can no longer confirm anything (for
// an observed close, its latest possible age, the idle age at which it was found closed: a
// coarse sweep's early sample is not refuted by a conn alive before the timer). A reset met
// with a younger conn's close is taken neither as an event nor as a provisional value. Two
// agreeing events against a conn seen alive within LearnWindow at an age they forbid bound
// non-idempotent requests only, as a provisional value (a client with a steady gap meets
// every crash at that gap, so crashes agree with each other); a backend whose timeout was
// really cut still gets learned once that sighting ages out, and the agreeing pair keeps
// POSTs away meanwhile. Whatever contradicts it, a single reset still bounds POSTs at once: that
// protection never waits for the analysis. A reset at an age that agrees with the learned
// value (within 25 % below it) lowers it at once, as before: the learned value is the earlier
// event it agrees with.

import (
	"context"
	"log/slog"
	"strconv"
	"time"
)

// provisional is a reset on reuse not yet confirmed by a second event.
type provisional struct {
	age time.Duration // idle age at checkout of the reset conn; 0: none
	at  time.Time
	// refuted: a conn outlived age since (noteAliveLocked). The backend does not close every
	// conn at age, but may still close some there (unsafeOKLocked).
	refuted bool
	grown   time.Time // the last growth step (growProvisionalLocked)
}

// answeredKeep is how many answered reuses contradictedLocked looks back over, and
// answeredQuorum how many of them at or past an event's age show it was no timer.
const (
	answeredKeep   = 32
	answeredQuorum = 8
)

// How a conn was seen alive (noteAliveLocked): only answers count towards the quorum.
type aliveHow bool

const (
	aliveAnswered aliveHow = true
	aliveProbed   aliveHow = false
)

func (h aliveHow) String() string {
	if h == aliveAnswered {
		return "answered a request"
	}
	return "was probed alive"
}

// sighting is a reused conn that answered a request sent at idle age age.
type sighting struct {
	age time.Duration
	at  time.Time
}

// refuteAge is the idle age at which a conn still alive shows that the backend's idle timer
// did not cause a reset (or a close) at age: a timer within 25 % of age would have closed it.
// minMargin covers the two idle clocks' drift at short ages.
func (p *Pool) refuteAge(age time.Duration) time.Duration {
	return max(time.Duration(float64(age)/agreeRatio), age+p.opts.minMargin())
}

// noteAliveLocked records that the backend kept c open at idle age x: it answered a request
// sent at that age, or a probe found it alive. how says which, for the log.
func (p *Pool) noteAliveLocked(c *Conn, x time.Duration, how aliveHow, now time.Time) {
	c.proven = max(c.proven, x)
	if !p.opts.Learn {
		return
	}
	l := &p.learn
	if how == aliveAnswered {
		l.answered[l.answeredN%answeredKeep] = sighting{age: x, at: now}
		l.answeredN++
	}
	if x >= l.aliveAge || now.Sub(l.aliveSeen) > p.opts.LearnWindow {
		l.aliveAge, l.aliveSeen = x, now
	}
	if len(l.events) > 0 {
		keep := l.events[:0]
		for _, e := range l.events {
			if x < p.refuteAge(e.hi) {
				keep = append(keep, e)
			}
		}
		l.events = keep
	}
	if a := l.prov.age; a > 0 && !l.prov.refuted && x >= p.refuteAge(a) {
		l.prov.refuted = true
		p.log.LogAttrs(context.Background(), slog.LevelInfo, "provisional backend idle timeout refuted: kept for non-idempotent requests on conns not seen alive that long",
			slog.Duration("provisional", a), slog.String("why", "a conn "+how.String()+" at a longer idle age"), slog.Duration("alive_idle_age", x),
			slog.Duration("unsafe_max_idle", p.unsafeIdle), slog.Duration("unsafe_max_idle_proven", p.unsafeBase))
	}
}

// unsafeOKLocked reports whether a non-idempotent request may reuse c at idle age age: below
// the bound in force, or, while a refuted provisional value holds that bound down, below the
// bound without it on a conn the backend has kept open at least that long, or on one it has
// kept open past the refuting age (its own record shows it is not closed at the reset's age).
// A conn outliving a reset's age shows that not every conn is closed there, not that none
// is: the conns behind one address may be closed by different timers (a Service spreading
// conns over pods with different keep-alive timeouts), and only a conn's own record says
// which kind it is. Without the second way a client that sends only POSTs, each on a conn
// younger than its last sighting, was stuck dialing for every request for the hour the
// provisional value takes to grow back: its conns are probed alive only while idle, so
// always at a younger age than the one they are reused at.
func (p *Pool) unsafeOKLocked(c *Conn, age time.Duration) bool {
	if p.youngUnprovenLocked(c, age) {
		return false // its backend may close it right after its response (afterresponse.go)
	}
	if age < p.unsafeIdle {
		return true
	}
	l := &p.learn
	return l.prov.refuted && age < p.unsafeBase && (age <= c.proven || c.proven >= p.refuteAge(l.prov.age))
}

// provenLocked returns the index of the youngest idle conn a non-idempotent request may reuse
// on its own record (unsafeOKLocked), or -1.
func (p *Pool) provenLocked(now time.Time) int {
	if !p.learn.prov.refuted && !p.afterResponseRuleLocked() {
		return -1
	}
	for i := len(p.idle) - 1; i >= 0; i-- {
		if c := p.idle[i]; p.expiredLocked(c, now) == "" && p.unsafeOKLocked(c, now.Sub(c.lastUsed)) {
			return i
		}
	}
	return -1
}

// youngDeathLocked records an idle conn found closed at idle age at most hi (for
// restartLocked), and drops a provisional value from a reset at most 2 sweep intervals ago
// that it is younger than by more than 25 %: the two are one restart, not the idle timer.
func (p *Pool) youngDeathLocked(hi time.Duration, now time.Time) {
	l := &p.learn
	span := 2 * p.opts.SweepInterval
	if now.Sub(l.deathSeen) > span || hi < l.deathAge {
		l.deathAge, l.deathSeen = hi, now
	}
	if a := l.prov.age; a > 0 && now.Sub(l.prov.at) <= span && float64(hi) < agreeRatio*float64(a) {
		p.dropEventsSinceLocked(l.prov.at.Add(-span))
		p.dropProvisionalLocked("a younger idle conn closed with it (a restart)", slog.Duration("closed_idle_age", hi))
	}
}

// restartLocked reports whether a reset at idle age age, seen now, came with a younger idle
// conn's close (within 2 sweep intervals before it).
func (p *Pool) restartLocked(age time.Duration, now time.Time) bool {
	l := &p.learn
	return !l.deathSeen.IsZero() && now.Sub(l.deathSeen) <= 2*p.opts.SweepInterval &&
		float64(l.deathAge) < agreeRatio*float64(age)
}

// contradictedLocked reports why a timer causing a reset (or close) at age would not fit what
// the backend did within LearnWindow ("": it would): a conn was seen alive at an idle age such
// a timer would not allow, or answeredQuorum of the last answeredKeep reused conns answered
// at an idle age of at least age. A timer at age lets no conn live past it; a crash or restart
// meeting a client that sends at a steady gap resets conns at that gap, which most reuses
// survive (so two crashes agree with each other, while the reuses around them do not).
func (p *Pool) contradictedLocked(age time.Duration, now time.Time) string {
	l := &p.learn
	if l.aliveAge >= p.refuteAge(age) && now.Sub(l.aliveSeen) <= p.opts.LearnWindow {
		return "a conn was seen alive at idle " + l.aliveAge.Round(time.Millisecond).String()
	}
	n := 0
	for _, s := range l.answered[:min(l.answeredN, answeredKeep)] {
		if s.age >= age && now.Sub(s.at) <= p.opts.LearnWindow {
			n++
		}
	}
	if n >= answeredQuorum {
		return strconv.Itoa(n) + " of the last " + strconv.Itoa(min(l.answeredN, answeredKeep)) +
			" reused conns answered at idle " + age.Round(time.Millisecond).String() + " or more"
	}
	return ""
}

func (p *Pool) setProvisionalLocked(age time.Duration, evidence string, now time.Time) {
	l := &p.learn
	if l.prov.age > 0 {
		age = min(age, l.prov.age)
	}
	l.prov = provisional{age: age, at: now}
	p.recomputeLocked()
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "reset on reuse: provisional backend idle timeout for non-idempotent requests",
		slog.Duration("provisional", age), slog.String("evidence", evidence), slog.Duration("unsafe_max_idle", p.unsafeIdle),
		slog.Duration("effective_idle", p.eff), slog.Duration("learned", l.value), slog.String("learned_source", l.source),
		slog.String("until", "a second reset or idle close agrees (then learned), or a conn outlives it"))
}

func (p *Pool) dropProvisionalLocked(why string, attr slog.Attr) {
	l := &p.learn
	age := l.prov.age
	l.prov = provisional{}
	p.recomputeLocked()
	p.log.LogAttrs(context.Background(), slog.LevelInfo, "provisional backend idle timeout dropped",
		slog.Duration("provisional", age), slog.String("why", why), attr,
		slog.Duration("unsafe_max_idle", p.unsafeIdle), slog.Duration("effective_idle", p.eff))
}

// dropEventsSinceLocked forgets the events recorded since t.
func (p *Pool) dropEventsSinceLocked(t time.Time) {
	l := &p.learn
	keep := l.events[:0]
	for _, e := range l.events {
		if e.at.Before(t) {
			keep = append(keep, e)
		}
	}
	l.events = keep
}

// growProvisionalLocked lets a provisional value no second event confirmed in LearnWindow grow
// back 10 % per GrowInterval, as growLocked does for a learned one, and drops it once it
// reaches what the configured idle timeout allows (it then bounds nothing).
func (p *Pool) growProvisionalLocked(now time.Time) {
	l := &p.learn
	if l.prov.age == 0 || now.Sub(l.prov.at) <= p.opts.LearnWindow || now.Sub(l.prov.grown) < p.opts.GrowInterval {
		return
	}
	old := l.prov.age
	limit := p.growLimit()
	if grown := time.Duration(float64(old) * growFactor); grown < limit {
		l.prov.age, l.prov.grown = grown, now
		p.recomputeLocked()
		p.log.LogAttrs(context.Background(), slog.LevelInfo, "provisional backend idle timeout growing: no second event",
			slog.Duration("provisional", grown), slog.Duration("previous", old),
			slog.Duration("learn_window", p.opts.LearnWindow), slog.Duration("unsafe_max_idle", p.unsafeIdle))
		return
	}
	p.dropProvisionalLocked("grew back to the idle timeout without a second event", slog.Duration("idle_timeout", p.opts.IdleTimeout))
}
