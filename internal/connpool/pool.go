package connpool

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"time"

	"sluice/internal/reason"
)

// Pool holds the connections to one upstream target. It is safe for concurrent use.
//
// Concurrency: one mutex guards the idle stack, the slot count, the waiter queue, the
// learner and the counters. Syscalls (dial, probe, close) run outside it. A conn popped from
// the idle stack is owned by its getter; the sweeper only probes conns it finds idle and
// re-checks under the mutex (state and gen) before acting on a result.
type Pool struct {
	addr string
	opts Options
	log  *slog.Logger
	tls  *tls.Config // nil: plain TCP; see tls.go
	// alpnTLS is tls offering h2 and http/1.1, the dials' config with Options.ALPN (alpn.go).
	alpnTLS *tls.Config

	mu   sync.Mutex
	idle []*Conn // LIFO: the top (end) is the most recently released
	// idleArr is idle's whole array: idle always ends where it ends, and starts later when
	// the oldest conns were evicted (idlestack.go).
	idleArr []*Conn
	// mayPre: an idle conn may be preconnected and unused (refreshLocked looks for one). Set
	// whenever such a conn goes on the stack, cleared by the look that finds none.
	mayPre     bool
	live       map[uint64]*Conn
	total      int // idle + in use + dialing
	waiters    []*waiter
	closed     bool
	closeWhy   CloseReason
	sweeping   bool
	stop       chan struct{}
	wg         sync.WaitGroup
	learn      learner
	heal       healer
	due        time.Time     // when maintainLocked's rules may next act (learn.go)
	eff        time.Duration // effective idle timeout; 0 = no reuse
	effLearned bool          // eff is below IdleTimeout because of learning
	unsafeIdle time.Duration // non-idempotent requests reuse only conns idle less than this
	unsafeBase time.Duration // unsafeIdle without a provisional value (unsafeOKLocked)
	conf       confidence    // what observed closes tell about the learned value (confidence.go)
	lastGet    time.Time     // the latest Get: preconnects happen only while traffic is recent
	pre        preconnector  // preconnect.go
	sentinel   *Conn         // a conn kept open only to see when the backend closes it (sentinel.go)
	stats      counters
	history    []LifeRecord // ring of closed conns
	histNext   int
}

type waiter struct {
	ch chan grant // buffered 1
}

// grant hands a waiter a released conn, a free slot (c == nil, err == nil), or an error.
type grant struct {
	c   *Conn
	err error
}

// New returns a pool for the target addr ("host:port"). log may be nil.
func New(addr string, opts Options, log *slog.Logger) *Pool {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pool{
		addr: addr,
		opts: opts.withDefaults(),
		log:  log.With("component", "connpool", "target", addr),
		live: make(map[uint64]*Conn),
		stop: make(chan struct{}),
	}
	p.tls = tlsConfig(p.opts.TLS, addr)
	if p.tls != nil && p.opts.ALPN != nil {
		p.alpnTLS = alpnConfig(p.tls)
	}
	p.heal.factor = 1
	p.stats.closedBy = make(map[CloseReason]uint64)
	p.history = make([]LifeRecord, 0, p.opts.History)
	p.recomputeLocked()
	return p
}

// Addr returns the target address.
func (p *Pool) Addr() string { return p.addr }

// KeepAlive reports whether connections are reused (Options.Enabled). When false the proxy
// sends "Connection: close".
func (p *Pool) KeepAlive() bool { return p.opts.Enabled }

func (p *Pool) errShutdown() error {
	return reason.New(503, reason.GatewayShutdown, p.addr, errors.New("connection pool closed"))
}

// Get returns a connection for one request. A non-idempotent request (idempotent=false)
// only reuses a connection idle less than min(UnsafeMaxIdle, effective idle/4); otherwise a
// fresh one is dialed. Errors are *reason.Error. The pool never retries a request.
func (p *Pool) Get(ctx context.Context, idempotent bool) (*Conn, error) {
	return p.get(ctx, idempotent, false, time.Now())
}

// GetAt is Get for a caller that has just read the clock: now stands for the current time
// (idle ages and expiries are judged at now; a clock read costs ~50 ns, and a proxied
// request would read it a dozen times).
func (p *Pool) GetAt(ctx context.Context, idempotent bool, now time.Time) (*Conn, error) {
	return p.get(ctx, idempotent, false, now)
}

// GetFresh returns a newly dialed connection (within MaxConns). The proxy uses it for an
// attempt after one failed on a reused connection, so that a retry cannot meet another
// connection the backend is closing.
func (p *Pool) GetFresh(ctx context.Context) (*Conn, error) {
	return p.get(ctx, false, true, time.Now())
}

func (p *Pool) get(ctx context.Context, idempotent, fresh bool, now time.Time) (*Conn, error) {
	for ; ; now = time.Now() { // the clock again after a failed check or a wait
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, p.errShutdown()
		}
		p.maintainLocked(now)
		p.lastGet = now
		var c *Conn
		var dead []*Conn
		if !fresh {
			c, dead = p.popLocked(now, idempotent)
		}
		if c != nil {
			p.checkoutLocked(c, now)
			p.mu.Unlock()
			c.cc.reset()
			closeAll(dead)
			if p.checked(c) {
				return c, nil
			}
			continue
		}
		if p.opts.MaxConns == 0 || p.total < p.opts.MaxConns {
			p.total++
			p.mu.Unlock()
			closeAll(dead)
			return p.dial(ctx)
		}
		if len(p.idle) > 0 {
			// At the cap with idle conns this request may not use: swap the oldest for a
			// fresh one, keeping its slot.
			old := p.dropOldestLocked()
			p.retireLocked(old, CloseEvicted, now, true)
			p.mu.Unlock()
			closeAll(append(dead, old))
			return p.dial(ctx)
		}
		w, err := p.enqueueLocked()
		p.mu.Unlock()
		closeAll(dead)
		if err != nil {
			return nil, err
		}
		g, err := p.wait(ctx, w)
		if err != nil {
			return nil, err
		}
		if g.c == nil {
			return p.dial(ctx) // a slot was handed over
		}
		c, redial := p.useHandoff(g.c, idempotent, fresh)
		switch {
		case c != nil:
			return c, nil
		case redial:
			return p.dial(ctx)
		}
	}
}

// popLocked pops the best idle conn for a request, retiring expired ones on the way. It
// returns nil when no idle conn fits; dead lists conns to close after unlocking.
func (p *Pool) popLocked(now time.Time, idempotent bool) (c *Conn, dead []*Conn) {
	for len(p.idle) > 0 {
		top := p.idle[len(p.idle)-1]
		if why := p.expiredLocked(top, now); why != "" {
			p.popTopLocked()
			p.retireLocked(top, why, now, false)
			dead = append(dead, top)
			continue
		}
		var i int
		if !idempotent && !p.unsafeOKLocked(top, now.Sub(top.lastUsed)) {
			// Every other idle conn is older still: only one seen alive that long, or one
			// past a close right after its response, may do.
			if i = p.provenLocked(now); i < 0 {
				return nil, dead
			}
		} else {
			i = p.refreshLocked(now, idempotent)
		}
		c = p.idle[i]
		p.idle = slices.Delete(p.idle, i, i+1)
		c.state = stateInUse
		return c, dead
	}
	return nil, dead
}

// refreshLocked picks which idle conn a request takes, the top being usable: a preconnected
// conn no request used yet (it was opened for this traffic; taking an older conn instead
// would leave it to be wasted), else the oldest one past half the effective idle timeout that
// this request may still use, else the top (the most recently released). Traffic that comes
// often enough keeps every conn it needs alive this way (a conn below the top would otherwise
// age out, and the next burst would wait for a connect); when traffic thins, conns still pass
// the limit and are retired. Preconnected conns are younger than the top's limit and the
// others are checked against this request's limits, so a request gets no older conn than its
// rules allow.
func (p *Pool) refreshLocked(now time.Time, idempotent bool) int {
	top := len(p.idle) - 1
	if i := p.preconnectedLocked(now, idempotent); i >= 0 {
		return i
	}
	for i, c := range p.idle[:top] {
		age := now.Sub(c.lastUsed)
		eff, _ := p.effFor(c)
		switch {
		case age < eff/2:
			return top // the rest are younger still
		case age >= eff || p.wornLocked(c, now) != "", !idempotent && !p.unsafeOKLocked(c, age):
			continue // the sweep retires it; a non-idempotent request may not take it
		}
		return i
	}
	return top
}

// preconnectedLocked returns the index of the youngest unused preconnected idle conn this
// request may take, or -1. It runs under the mutex on every checkout, and most pools hold no
// such conn: it walks the idle stack only while one may be there (mayPre).
func (p *Pool) preconnectedLocked(now time.Time, idempotent bool) int {
	if !p.mayPre {
		return -1
	}
	found := false
	for i := len(p.idle) - 1; i >= 0; i-- {
		c := p.idle[i]
		if !c.pre {
			continue
		}
		found = true
		if p.expiredLocked(c, now) == "" && (idempotent || p.unsafeOKLocked(c, now.Sub(c.lastUsed))) {
			return i
		}
	}
	p.mayPre = found
	return -1
}

// expiredLocked says why c must not be handed out any more, or "".
func (p *Pool) expiredLocked(c *Conn, now time.Time) CloseReason {
	if why := p.wornLocked(c, now); why != "" {
		return why
	}
	eff, learned := p.effFor(c)
	if now.Sub(c.lastUsed) >= eff {
		return p.idleReason(eff, learned)
	}
	return ""
}

// wornLocked checks the limits that do not depend on idle time.
func (p *Pool) wornLocked(c *Conn, now time.Time) CloseReason {
	switch {
	case p.opts.MaxRequests > 0 && c.served >= p.opts.MaxRequests, c.limit > 0 && c.served >= c.limit:
		return CloseMaxRequests
	case p.opts.MaxLifetime > 0 && now.Sub(c.created) >= p.opts.MaxLifetime:
		return CloseMaxLifetime
	}
	return ""
}

// effFor returns c's effective idle timeout (the pool's, lowered by the latest Keep-Alive
// timeout seen on c, unless the pool's brackets proved that value conservative) and whether
// learning lowered it below the configured value.
func (p *Pool) effFor(c *Conn) (time.Duration, bool) {
	eff, learned := p.eff, p.effLearned
	if c.kaTimeout > 0 && !(p.conf.beyond && c.kaTimeout <= p.learn.value) {
		v := time.Duration(p.opts.SafetyFraction * float64(c.kaTimeout) * p.heal.factor)
		if p.conf.ok {
			v = time.Duration(float64(c.kaTimeout-p.conf.margin) * p.heal.factor)
		}
		if v < eff {
			eff, learned = v, true
		}
		if eff < p.opts.ReuseFloor {
			eff = 0
		}
	}
	return eff, learned
}

func (p *Pool) idleReason(eff time.Duration, learned bool) CloseReason {
	switch {
	case p.heal.factor == 0:
		return CloseReuseSuspended
	case learned || eff < p.opts.IdleTimeout:
		return CloseLearnedTimeout
	}
	return CloseIdleTimeout
}

// checked runs the reuse check on an idle conn checked out with the pop (so that a live one,
// the common case, costs no second lock). A dead conn is closed, counted as stale caught
// rather than as a reuse, and fed to learning.
func (p *Pool) checked(c *Conn) bool {
	why := c.check()
	if why == "" {
		return true
	}
	now := time.Now()
	p.mu.Lock()
	switch {
	case c.served > 0:
		p.stats.reused--
	case c.Reused: // a preconnected conn: it was counted used, it was wasted
		p.stats.preconnectsUsed--
		p.stats.preconnectsWasted++
	}
	p.stats.staleCaught++
	p.observeLocked(c, now)
	p.retireLocked(c, why, now, false)
	p.mu.Unlock()
	_ = c.cc.Close()
	return false
}

// checkoutLocked hands c to a request. The caller resets c's byte counts after unlocking
// (c is its own then).
func (p *Pool) checkoutLocked(c *Conn, now time.Time) {
	c.gen++
	c.idleAtGet = now.Sub(c.lastUsed)
	c.gotAt = now
	c.Reused = c.served > 0 || c.pre // a preconnected conn sat idle in the pool too
	c.IdleAge = c.idleAtGet
	c.Served = c.served
	c.Queued = false
	switch {
	case c.pre:
		c.pre = false
		p.stats.preconnectsUsed++
	case c.Reused:
		p.stats.reused++
	}
}

// useHandoff takes a conn released straight to this waiter. A request that wants a fresh
// connection (GetFresh), or a non-idempotent one that may not reuse this one, swaps it for a
// new one, keeping the slot (redial). A conn that fails the check frees its slot; the caller
// then starts over.
func (p *Pool) useHandoff(c *Conn, idempotent, fresh bool) (_ *Conn, redial bool) {
	now := time.Now()
	p.mu.Lock()
	ok := !fresh && (idempotent || p.unsafeOKLocked(c, now.Sub(c.lastUsed)))
	if ok {
		p.checkoutLocked(c, now)
		c.Queued = true
	} else {
		p.retireLocked(c, CloseEvicted, now, true)
	}
	p.mu.Unlock()
	if !ok {
		_ = c.cc.Close()
		return nil, true
	}
	c.cc.reset()
	if p.checked(c) {
		return c, false
	}
	return nil, false
}

func (p *Pool) enqueueLocked() (*waiter, error) {
	if len(p.waiters) >= p.opts.MaxPending {
		p.stats.queueFull++
		return nil, reason.New(503, reason.PoolQueueFull, p.addr,
			errors.New("connection limit reached and wait queue full"))
	}
	w := &waiter{ch: make(chan grant, 1)}
	p.waiters = append(p.waiters, w)
	p.stats.queueWaits++
	return w, nil
}

// wait blocks until w is granted a conn or slot, the queue timeout passes, or ctx ends.
func (p *Pool) wait(ctx context.Context, w *waiter) (grant, error) {
	var timeout <-chan time.Time
	if p.opts.QueueTimeout > 0 {
		t := time.NewTimer(p.opts.QueueTimeout)
		defer t.Stop()
		timeout = t.C
	}
	var cause error
	select {
	case g := <-w.ch:
		return g, g.err
	case <-ctx.Done():
		cause = ctx.Err()
	case <-timeout:
		cause = errors.New("timed out waiting for a connection")
	}
	p.mu.Lock()
	removed := false
	for i, o := range p.waiters {
		if o == w {
			p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
			removed = true
			break
		}
	}
	if !removed {
		// Granted while timing out: use it rather than pass it on.
		p.mu.Unlock()
		g := <-w.ch
		return g, g.err
	}
	p.stats.queueTimeouts++
	p.mu.Unlock()
	return grant{}, reason.New(503, reason.PoolQueueTimeout, p.addr, cause)
}

// freeSlotLocked gives a slot that is no longer used to the first waiter, or frees it.
func (p *Pool) freeSlotLocked() {
	if len(p.waiters) > 0 {
		w := p.waiters[0]
		p.waiters = p.waiters[1:]
		w.ch <- grant{}
		return
	}
	p.total--
}

// retireLocked marks c closed with why and records its life. keepSlot leaves the slot to
// the caller (it dials a replacement). The caller closes c.cc after unlocking.
func (p *Pool) retireLocked(c *Conn, why CloseReason, now time.Time, keepSlot bool) {
	if c.pre {
		p.stats.preconnectsWasted++ // retired before any request used it
	}
	c.state = stateClosed
	delete(p.live, c.ID)
	p.stats.closedBy[why]++
	rec := LifeRecord{ID: c.ID, Created: c.created, Closed: now, Served: c.served,
		LastIdleAge: c.idleAtGet, LastUsed: c.lastUsed, Reason: why}
	if len(p.history) < cap(p.history) {
		p.history = append(p.history, rec)
	} else {
		p.history[p.histNext] = rec
		p.histNext = (p.histNext + 1) % len(p.history)
	}
	if !keepSlot {
		p.freeSlotLocked()
	}
}

func closeAll(cs []*Conn) {
	for _, c := range cs {
		_ = c.cc.Close()
	}
}

// dial opens a new conn in a slot already counted in total; on failure the slot is freed.
// Over TLS the handshake is part of the dial, bounded by the same connect timeout.
func (p *Pool) dial(ctx context.Context) (*Conn, error) {
	start := time.Now()
	dctx, cancel := context.WithTimeout(ctx, p.opts.ConnectTimeout)
	nc, err := p.opts.Dial(dctx, "tcp", p.addr)
	var s *tlsSocket
	if err == nil && p.tls != nil {
		s, err = p.handshake(dctx, nc)
	}
	cancel()
	if err != nil {
		return nil, p.dialFailed(ctx, err)
	}
	if p.negotiated(s) == alpnH2 {
		p.handOver(s)
		return nil, ErrNegotiatedH2
	}
	now := time.Now()
	p.mu.Lock()
	if p.closed {
		p.freeSlotLocked()
		p.mu.Unlock()
		if s != nil {
			_ = s.close()
		} else {
			_ = nc.Close()
		}
		return nil, p.errShutdown()
	}
	c := newConn(nc, s, start)
	p.countHandshakeLocked(s)
	p.live[c.ID] = c
	p.stats.opened++
	p.pre.noteDial(now.Sub(start))
	p.stats.pathConnects++
	c.lastUsed = now // dialed for this request: it was never idle (IdleAge 0)
	p.checkoutLocked(c, now)
	p.mu.Unlock()
	return c, nil // new: its byte counts are 0
}

// dialFailed counts a failed dial, frees its slot and returns its reason.
func (p *Pool) dialFailed(ctx context.Context, err error) error {
	rerr := p.dialReason(ctx, err)
	p.mu.Lock()
	p.countDialErrorLocked(rerr)
	p.freeSlotLocked()
	p.mu.Unlock()
	return rerr
}

// dialReason is the reason of a failed dial (TCP or TLS).
func (p *Pool) dialReason(ctx context.Context, err error) *reason.Error {
	var he *handshakeError
	if errors.As(err, &he) {
		return p.tlsError(ctx, err)
	}
	return reason.DialFailure(ctx, p.addr, err)
}

func (p *Pool) countDialErrorLocked(rerr *reason.Error) {
	p.stats.dialErrors++
	switch rerr.Code {
	case reason.TLSHandshake:
		p.stats.tlsHandshakeErrors++
	case reason.TLSCertificate:
		p.stats.tlsCertErrors++
	}
}
