package probe

// The idle phase: see doc.go for the algorithm and its tolerances.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

const (
	ladderStart  = 50 * time.Millisecond  // first ladder connection, then doubling
	minSlack     = 250 * time.Millisecond // wait at least this long for late closes
	minCheckGap  = 20 * time.Millisecond  // the check is at least this far below the timeout
	checkTooLate = 10 * time.Millisecond  // a watch this close to the check age is not chosen
)

// watch is one connection of the idle phase. Its goroutine makes one request, then blocks
// reading until the backend closes the connection, the hard deadline passes, or the
// coordinator moves the read deadline to send a check request.
type watch struct {
	base  bool // opened at the start (else: a ladder or check connection)
	c     *conn
	ready bool // coordinator-owned: the ready event was received
	// idleAt is when the response was read: idle age 0. Written before the ready event.
	idleAt time.Time

	mu      sync.Mutex
	hard    time.Time // report evOpen at this time
	checkAt time.Time // send the check request at this time; zero: none
}

type eventKind int

const (
	evReady   eventKind = iota // connection open and answered: now idle
	evClosed                   // the backend closed it at idle age
	evOpen                     // still open at the hard deadline
	evChecked                  // the check request was sent; ok tells if it was answered
	evFailed                   // could not open it, or our side closed it
)

type event struct {
	w    *watch
	kind eventKind
	age  time.Duration
	ok   bool
	err  error
}

// arm sets the read deadline to the earlier of the hard deadline and the check time.
func (w *watch) arm() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	d := w.hard
	if !w.checkAt.IsZero() && w.checkAt.Before(d) {
		d = w.checkAt
	}
	return w.c.nc.SetReadDeadline(d)
}

// armCheck asks the watch to send a request at idle time at. Only for ready watches.
func (w *watch) armCheck(at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.checkAt = at
	_ = w.c.nc.SetReadDeadline(at) // wakes a blocked read at once if at has passed
}

// dueCheck reports whether a check was asked for and is due; it clears it.
func (w *watch) dueCheck(now time.Time) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.checkAt.IsZero() || now.Before(w.checkAt) {
		return false
	}
	w.checkAt = time.Time{}
	return true
}

func (w *watch) run(ctx context.Context, addr string, o *Options, events chan<- event) {
	send := func(e event) {
		e.w = w
		select {
		case events <- e:
		case <-ctx.Done():
		}
	}
	c, err := dial(ctx, addr, o)
	if err != nil {
		send(event{kind: evFailed, err: err})
		return
	}
	defer c.close()
	stop := context.AfterFunc(ctx, c.close)
	defer stop()
	if err := c.roundTrip(o.ReadTimeout); err != nil {
		send(event{kind: evFailed, err: fmt.Errorf("idle phase request: %w", err)})
		return
	}
	w.c, w.idleAt = c, time.Now()
	send(event{kind: evReady})
	for {
		if err := w.arm(); err != nil {
			send(event{kind: evFailed, err: err})
			return
		}
		_, err := c.br.Peek(1) // data (a 408, say) counts as the backend giving up too
		now := time.Now()
		age := now.Sub(w.idleAt)
		switch {
		case err == nil || isClosed(err):
			send(event{kind: evClosed, age: age})
			return
		case !isTimeout(err):
			send(event{kind: evFailed, err: err})
			return
		case w.dueCheck(now):
			err := c.roundTrip(o.ReadTimeout)
			send(event{kind: evChecked, age: age, ok: err == nil, err: err})
			return
		case !now.Before(w.hard):
			send(event{kind: evOpen, age: age})
			return
		}
	}
}

// idleRun is the coordinator's state.
type idleRun struct {
	ctx    context.Context
	addr   string
	o      *Options
	wg     sync.WaitGroup
	events chan event
	start  time.Time
	hard   time.Time

	live      map[*watch]bool // ready and still being watched
	baseOpen  int             // base watches not finished
	readyOnce bool
	lastErr   error

	first   time.Time       // when the first close was seen
	minAge  time.Duration   // shortest close age so far
	slack   time.Duration   // how long after first to wait for the other base closes
	samples []time.Duration // close ages

	checkW    *watch
	checkAge  time.Duration // the idle age the check is meant to be sent at
	checkSent time.Duration // the age it was sent at
	checkDone bool
	checkOK   bool
	lateFails int // failed checks sent too late to count (a loaded machine woke late)
}

// maxLateFails bounds how often a failed check that was sent too late is tried again.
const maxLateFails = 3

// measureIdle runs the idle phase.
func measureIdle(ctx context.Context, addr string, o *Options) (*IdleResult, error) {
	wctx, cancel := context.WithCancel(ctx)
	r := &idleRun{ctx: wctx, addr: addr, o: o, events: make(chan event), start: time.Now(),
		live: map[*watch]bool{}}
	defer func() {
		cancel()
		r.wg.Wait()
	}()
	r.hard = r.start.Add(o.MaxWait)
	for range o.Watchers {
		r.launch(true, r.hard)
		r.baseOpen++
	}
	ladder := ladderStart
	tick := time.NewTicker(o.ProgressEvery)
	defer tick.Stop()
	for !r.finished(time.Now()) {
		wake := r.nextWake(ladder)
		timer := time.NewTimer(time.Until(wake))
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		case now := <-tick.C:
			r.reportProgress(now)
		case e := <-r.events:
			first := r.first.IsZero()
			r.handle(e)
			if first && !r.first.IsZero() {
				o.progress("%s: idle timeout: the backend closed a connection idle %s; confirming with a request just below it",
					addr, r.minAge.Round(time.Millisecond))
			}
		case now := <-timer.C:
			if r.first.IsZero() && !now.Before(r.start.Add(ladder)) && ladder < o.MaxWait {
				r.launch(false, r.hard)
				ladder *= 2
			}
		}
		timer.Stop()
		if r.baseOpen == 0 && !r.readyOnce && len(r.live) == 0 && r.first.IsZero() {
			return nil, fmt.Errorf("probe %s: idle phase: %w", addr, r.lastErr)
		}
	}
	return r.result(time.Now()), nil
}

// reportProgress says what the idle phase is waiting for.
func (r *idleRun) reportProgress(now time.Time) {
	elapsed := now.Sub(r.start).Round(time.Second)
	if r.first.IsZero() {
		r.o.progress("%s: idle timeout: waiting for the backend to close an idle connection: %s of at most %s, %d connections idle",
			r.addr, elapsed, r.o.MaxWait, len(r.live))
		return
	}
	r.o.progress("%s: idle timeout: shortest close so far at %s idle (%d closes); %s elapsed, waiting for the confirming request",
		r.addr, r.minAge.Round(time.Millisecond), len(r.samples), elapsed)
}

func (r *idleRun) launch(base bool, hard time.Time) *watch {
	w := &watch{base: base, hard: hard}
	r.wg.Go(func() { w.run(r.ctx, r.addr, r.o, r.events) })
	return w
}

// nextWake is when the coordinator must look at the clock again without an event.
func (r *idleRun) nextWake(ladder time.Duration) time.Time {
	if r.first.IsZero() {
		wake := r.hard
		if next := r.start.Add(ladder); ladder < r.o.MaxWait && next.Before(wake) {
			wake = next
		}
		return wake
	}
	if r.checkDone {
		return r.first.Add(r.slack)
	}
	return r.giveUp()
}

// giveUp bounds the wait for a check that never reports.
func (r *idleRun) giveUp() time.Time {
	return r.first.Add(r.slack + r.minAge + r.o.DialTimeout + r.o.ReadTimeout)
}

// finished reports whether the phase has seen enough.
func (r *idleRun) finished(now time.Time) bool {
	if r.first.IsZero() {
		return !now.Before(r.hard) || (r.readyOnce && len(r.live) == 0 && r.baseOpen == 0)
	}
	if !r.checkDone {
		return !now.Before(r.giveUp())
	}
	return r.baseOpen == 0 || !now.Before(r.first.Add(r.slack))
}

func (r *idleRun) handle(e event) {
	w := e.w
	switch e.kind {
	case evReady:
		w.ready, r.readyOnce = true, true
		r.live[w] = true
		if w == r.checkW {
			w.armCheck(w.idleAt.Add(r.checkAge))
		}
		return
	case evClosed:
		r.samples = append(r.samples, e.age)
		if r.first.IsZero() || e.age < r.minAge {
			r.minAge = e.age
		}
		if r.first.IsZero() {
			r.first = time.Now()
			r.slack = max(r.minAge/5, minSlack)
		}
	case evChecked:
		// A check that failed after being sent closer to the close age than to the age
		// meant proves nothing about a request below the timeout: try again.
		if late := e.age > r.checkAge+(r.minAge-r.checkAge)/2; !e.ok && late && r.lateFails < maxLateFails {
			r.lateFails++
			r.checkW = nil
			break
		}
		r.checkDone, r.checkOK, r.checkSent = true, e.ok, e.age
	case evFailed:
		r.lastErr = e.err
	}
	delete(r.live, w)
	if w.base {
		r.baseOpen--
	}
	if w == r.checkW && e.kind != evChecked {
		r.checkW = nil // closed or failed before its check: choose again
	}
	if !r.first.IsZero() && r.checkW == nil && !r.checkDone {
		r.pickCheck(time.Now())
	}
}

// pickCheck chooses the connection that sends a request just below the shortest close age
// seen: the live one that will reach that age soonest, or a fresh one if none is young
// enough.
func (r *idleRun) pickCheck(now time.Time) {
	r.checkAge = r.minAge - max(r.minAge/10, minCheckGap)
	if r.checkAge <= 0 {
		r.checkDone, r.checkOK, r.checkAge = true, true, 0
		return
	}
	var best *watch
	for w := range r.live {
		age := now.Sub(w.idleAt)
		if age <= r.checkAge-checkTooLate && (best == nil || w.idleAt.Before(best.idleAt)) {
			best = w
		}
	}
	if best != nil {
		r.checkW = best
		best.armCheck(best.idleAt.Add(r.checkAge))
		return
	}
	r.checkW = r.launch(false, now.Add(r.checkAge+r.o.DialTimeout+r.o.ReadTimeout+time.Second))
}

func (r *idleRun) result(now time.Time) *IdleResult {
	ir := &IdleResult{MaxWait: Duration(r.o.MaxWait)}
	if len(r.samples) == 0 {
		return ir
	}
	slices.Sort(r.samples)
	ir.Observed = true
	ir.Timeout = Duration(r.samples[0])
	ir.Longest = Duration(r.samples[len(r.samples)-1])
	for _, s := range r.samples {
		ir.Samples = append(ir.Samples, Duration(s))
	}
	for w := range r.live {
		if now.Sub(w.idleAt) > r.minAge+r.slack {
			ir.OpenPastSlack++
		}
	}
	if r.checkAge > 0 && r.checkDone {
		ir.CheckAge, ir.CheckOK = Duration(r.checkSent), r.checkOK
		if !r.checkOK && Duration(r.checkAge) < ir.Timeout {
			ir.Timeout = Duration(r.checkAge)
		}
	}
	return ir
}
