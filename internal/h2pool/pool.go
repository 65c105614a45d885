package h2pool

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/connpool"
	"sluice/internal/reason"
)

// ErrUnprocessed is the error of a request the backend provably did not process: its stream
// was above a GOAWAY's last-stream-id, was refused (RST_STREAM REFUSED_STREAM), or never
// started because the connection could not take it. It may be sent again, whatever its
// method, on another connection.
var ErrUnprocessed = errors.New("the backend did not process the stream (above a GOAWAY's last-stream-id, REFUSED_STREAM, or the connection could not take it)")

// ErrNotHTTP2 fails the streams of a connection whose target answered the HTTP/2 preface in
// HTTP/1.x (an h2c upstream pointed at an HTTP/1.1 server): none of them was processed.
var ErrNotHTTP2 = errors.New("the target answered the HTTP/2 preface in HTTP/1.x: it does not speak HTTP/2")

// ErrMalformedResponse is in the error of a stream whose response the backend sent
// malformed (RFC 9113 §8.1.1): an invalid :status or field, content-length values that
// differ or do not parse, DATA before the head or on a response to HEAD, a body longer or
// shorter than its content-length, a head past the header list limit. The client reset the
// stream with PROTOCOL_ERROR; the backend answered, so it processed the request: this is
// HTTP/1.1's bad response, not a reset before one, and not to be retried as a reset.
var ErrMalformedResponse = errors.New("the backend's HTTP/2 response was malformed")

// ErrProtocol is in the error of a stream whose backend broke the HTTP/2 protocol in its
// frames (RFC 9113 §5.4): on the connection, a connection error the client found (a frame
// on a stream the client never opened, server-initiated ones included, PUSH_PROMISE with
// push refused, a window overrun, a frame the Framer refused), for which it sent GOAWAY and
// closed the connection, failing every stream on it; or on the stream, a stream error that
// is not a malformed message (a window overrun or a zero WINDOW_UPDATE on it), for which it
// reset that stream. Unlike ErrMalformedResponse it does not say that the stream's answer
// began: one failed before its head may not have been processed, as after any connection
// loss (one above a GOAWAY's last-stream-id fails with ErrUnprocessed instead).
var ErrProtocol = errors.New("the backend broke the HTTP/2 protocol")

// ErrClosed is returned by a pool that was closed.
var ErrClosed = errors.New("h2pool: pool closed")

// DefaultSweepInterval is how often the sweeper looks at the connections.
const DefaultSweepInterval = 250 * time.Millisecond

// historyLen is how many life records of closed connections a pool keeps.
const historyLen = 64

// Options configure a Pool. Durations of 0 turn their mechanism off unless said otherwise.
type Options struct {
	// TLS, when set, makes connections TLS with ALPN "h2" (NextProtos is set by the pool);
	// nil is h2c (HTTP/2 over plain TCP with prior knowledge).
	TLS *tls.Config
	// MaxConns is the most connections that take new streams (0: no limit). With every
	// one full, a request waits for a stream slot until its context ends. Draining
	// connections (retiring at MaxRequests or MaxLifetime, or after a GOAWAY) take no new
	// stream and do not count, up to MaxDraining of them (slots.go).
	MaxConns int
	// MaxDraining is how many draining connections, kept open only for their streams in
	// flight, may be open beyond MaxConns; above that they count against MaxConns again.
	// 0: draining connections always count (unused without MaxConns).
	MaxDraining int
	// ConnectTimeout bounds a dial and its TLS handshake.
	ConnectTimeout time.Duration
	// IdleTimeout closes a connection that carried no stream for this long.
	IdleTimeout time.Duration
	// Learn learns the backend's idle timeout from closes and GOAWAYs that come to
	// connections without streams; SafetyFraction of it then bounds the idle time.
	Learn          bool
	SafetyFraction float64
	// PingAfterIdle: a connection idle this long gets a PING before a new stream goes on it.
	PingAfterIdle time.Duration
	// ReadIdleTimeout: a connection that read nothing for this long gets a PING.
	ReadIdleTimeout time.Duration
	// PingTimeout bounds the wait for a PING's answer; unanswered retires the connection.
	PingTimeout time.Duration
	// SweepInterval is how often connections are looked at (0: DefaultSweepInterval).
	SweepInterval time.Duration
	// Auto: the upstream's protocol is auto; connections come from Dial, and the target's
	// ALPN answer decides whether the pool serves it (alpn.go). TLS is then only what
	// Snapshot and TLS report.
	Auto bool
	// Dial opens the connections of an Auto pool (required with Auto, unused without).
	Dial DialFunc
	// ReprobeInterval: while an Auto pool's target answers HTTP/1.1, a request that comes to
	// the pool anyway (gRPC) dials to ask again at most once per this interval, and
	// otherwise fails at once with ErrNegotiatedHTTP1 (0: DefaultReprobeInterval).
	ReprobeInterval time.Duration
	// MaxRequests: a connection that was given this many streams takes no more; it is
	// closed (max_requests) when they ended, and a replacement is dialed ahead (retire.go).
	// 0: no limit.
	MaxRequests int64
	// MaxLifetime: a connection this old takes no new streams, and is closed
	// (max_lifetime) when its streams ended; a replacement is dialed ahead. 0: no limit.
	MaxLifetime time.Duration
}

// DefaultReprobeInterval is Options.ReprobeInterval's default.
const DefaultReprobeInterval = time.Second

// Pool keeps the HTTP/2 connections to one target and runs streams on them; see doc.go.
type Pool struct {
	addr string
	opts Options
	log  *slog.Logger

	mu       sync.Mutex
	conns    []*conn
	dialing  int
	sparing  int   // of those, spares dialed ahead (retire.go)
	demand   int64 // requests waiting for a connection being dialed (burst.go)
	closed   bool
	nextID   uint64
	wake     chan struct{} // closed and replaced when a stream slot may have freed
	stop     chan struct{}
	learned  time.Duration
	counters Counters
	closes   map[CloseReason]int64
	history  [historyLen]LifeRecord
	histN    int // records written in all

	proto     atomic.Int32 // the target's latest ALPN answer (auto pools; alpn.go)
	lastProbe time.Time    // when an auto pool last dialed (under mu)
}

// conn is one HTTP/2 connection of the pool.
type conn struct {
	id      uint64
	cc      *clientConn
	created time.Time
	// The read-idle check (sweeper, under Pool.mu): the client's count of reads that
	// returned bytes at the last sweep that saw it change, and that sweep's time.
	readsSeen uint64
	readAt    time.Time
	streams   atomic.Int64 // streams started on it
	pinging   atomic.Bool  // a read-idle PING is out
	// active counts the streams handed out and not yet Done; idleSince (unix nanoseconds)
	// is when it last fell to 0 (the creation time before the first stream).
	active    atomic.Int64
	idleSince atomic.Int64
	gone      bool // retired (under Pool.mu)
	dead      bool // takes no new streams: a GOAWAY came, or its read side ended (under Pool.mu)
	// settled: the backend's SETTINGS (its MAX_CONCURRENT_STREAMS) have been applied.
	// Until then the connection would allow 100 streams; the pool puts one on the connection
	// and makes the other requests wait for the SETTINGS (up to settingsWait), so that a
	// backend allowing fewer never sees more, and a burst on a cold pool does not dial a
	// connection per request. noWait (under Pool.mu): that wait timed out once.
	settled atomic.Bool
	noWait  bool
	// Retiring at MaxRequests or MaxLifetime (retire.go), all under Pool.mu: given counts
	// the streams reserved on it; retiring is the close reason once it takes no new
	// streams; replaced says a replacement was dialed for it; spare that it is such a
	// replacement, not used until no other connection can take a stream.
	given    int64
	retiring CloseReason
	replaced bool
	spare    bool
	// checking is closed when the PING before a stream on this idle connection (or a
	// read-idle PING, sweep.go) was answered or not (nil when none is out; under Pool.mu).
	// Requests that pick the connection meanwhile wait for it (checkBeforeStream).
	checking chan struct{}
}

// settingsWait bounds how long requests wait for a new connection's SETTINGS before dialing
// their own.
const settingsWait = time.Second

// isSettled says whether c's SETTINGS have been applied.
func (c *conn) isSettled() bool {
	if c.settled.Load() {
		return true
	}
	if c.cc.limit.Load() >= 0 {
		c.settled.Store(true)
		return true
	}
	return false
}

// New returns a pool for addr (host:port) and starts its sweeper; Close stops it.
func New(addr string, o Options, log *slog.Logger) *Pool {
	if o.SweepInterval <= 0 {
		o.SweepInterval = DefaultSweepInterval
	}
	if o.ReprobeInterval <= 0 {
		o.ReprobeInterval = DefaultReprobeInterval
	}
	if o.TLS != nil {
		o.TLS = o.TLS.Clone()
		o.TLS.NextProtos = []string{ALPNH2}
		if o.TLS.ServerName == "" {
			// A target given by IP address (no tls.server_name): the certificate must carry
			// that IP, and no SNI is sent, as the HTTP/1.1 pool does (connpool's tlsConfig).
			// Without a name crypto/tls failed every handshake ("either ServerName or
			// InsecureSkipVerify must be specified").
			o.TLS.ServerName, _, _ = net.SplitHostPort(addr)
		}
		if !o.TLS.SessionTicketsDisabled && o.TLS.ClientSessionCache == nil {
			// tls.session_resumption: later connections resume an earlier one's session,
			// as the HTTP/1.1 pool's do. Before, only a config with client certificates
			// (which brings its own cache) resumed.
			o.TLS.ClientSessionCache = tls.NewLRUClientSessionCache(4) // one would do: the pool has one target
		}
	}
	p := &Pool{addr: addr, opts: o, log: log.With("component", "h2pool", "target", addr),
		wake: make(chan struct{}), stop: make(chan struct{}), closes: map[CloseReason]int64{}}
	go p.sweep()
	return p
}

// Addr is the target address.
func (p *Pool) Addr() string { return p.addr }

// TLS reports whether the pool's connections are TLS (h2) rather than h2c.
func (p *Pool) TLS() bool { return p.opts.TLS != nil }

// Attempt is what one RoundTrip learned, filled in for the caller.
type Attempt struct {
	// ConnID is the connection the stream went on (0: none was had).
	ConnID uint64
	// Reused: the connection had carried streams before this one.
	Reused bool
	// IdleAge is how long the connection had carried no stream.
	IdleAge time.Duration
	// Unprocessed: the backend provably did not process the request (ErrUnprocessed).
	Unprocessed bool
	// Settled, set when RoundTrip fails: the backend's SETTINGS had come on the connection,
	// so it had accepted the connection and its TLS session (a TLS alert after that is no
	// refusal of the session, and says nothing of whether the stream was run).
	Settled bool
	// Fresh, set by the caller, puts the stream on a newly dialed connection (the last
	// re-send of a request whose streams were not processed on pooled ones).
	Fresh bool

	c *conn
}

// RoundTrip sends req on one of the pool's connections and returns the response once its
// head arrived; the body streams on (close it, then call Done). req.URL must be absolute
// (scheme "https" or "http", any host: the pool dials its own address). A stream the
// backend provably did not process comes back as ErrUnprocessed, with a.Unprocessed set,
// for the caller's retry rules to act on; the pool itself never re-sends (see doc.go).
func (p *Pool) RoundTrip(req *http.Request, a *Attempt) (*http.Response, error) {
	*a = Attempt{Fresh: a.Fresh}
	c, reused, idle, err := p.get(req.Context(), a.Fresh)
	if err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	a.ConnID, a.Reused, a.IdleAge, a.c = c.id, reused, idle, c
	c.streams.Add(1)
	p.mu.Lock()
	p.counters.Streams++
	p.mu.Unlock()
	resp, err := c.cc.roundTrip(req)
	if err != nil {
		a.Settled = c.isSettled()
		p.Done(a)
	}
	if errors.Is(err, ErrUnprocessed) {
		a.Unprocessed = true
		p.mu.Lock()
		p.counters.Unprocessed++
		p.mu.Unlock()
	}
	return resp, err
}

// Done tells the pool that the stream of a ended (its response body was closed), which may
// free a slot for a request waiting under MaxConns. RoundTrip calls it when it fails.
func (p *Pool) Done(a *Attempt) {
	c := a.c
	if c == nil {
		return
	}
	a.c = nil
	idle := c.active.Add(-1) == 0
	if idle {
		c.idleSince.Store(time.Now().UnixNano())
	}
	p.mu.Lock()
	if idle && c.retiring != "" && c.active.Load() == 0 {
		p.retireLocked(c, c.retiring, time.Now()) // its last stream ended (retire.go)
	}
	p.wakeLocked()
	p.mu.Unlock()
}

// markDead takes c out of service: a GOAWAY came, or its read side ended. No new stream
// goes on it; its open streams run on, and the sweeper closes and records it once they
// ended.
func (p *Pool) markDead(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !c.dead {
		c.dead = true
		p.wakeLocked() // draining now: it may free a slot under MaxConns (slots.go)
	}
}

// get returns a connection with a stream slot reserved for the caller.
func (p *Pool) get(ctx context.Context, fresh bool) (c *conn, reused bool, idle time.Duration, err error) {
	waitedDial, waitedSlot := false, false // counted in DialWaits, SlotWaits
	demand := false                        // counted in p.demand until a stream is reserved (burst.go)
	defer func() {
		if demand {
			p.mu.Lock()
			p.demand--
			p.mu.Unlock()
		}
	}()
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, false, 0, ErrClosed
		}
		c = nil
		var unsettled *conn
		var wasSpare bool
		if !fresh {
			c, unsettled, wasSpare = p.pickLocked()
		}
		if c != nil {
			if demand { // served: no longer waiting for a dial
				demand = false
				p.demand--
			}
			first := c.active.Add(1) == 1 // under p.mu: the sweeper sees the stream
			if first {
				idle = time.Since(time.Unix(0, c.idleSince.Load()))
			}
			// A spare waited unused: check it as a reused connection. One check at a time:
			// a caller that left hands c back while its PING is still out.
			checking := c.checking
			check := checking == nil && first && idle > 0 && idle >= p.opts.PingAfterIdle && (c.streams.Load() > 0 || wasSpare)
			if check {
				checking = make(chan struct{})
				c.checking = checking
			}
			p.mu.Unlock()
			if check && !p.checkBeforeStream(ctx, c, checking) || !check && checking != nil && !p.awaitCheck(ctx, c, checking) {
				if ctx.Err() != nil {
					return nil, false, 0, ctx.Err()
				}
				continue
			}
			return c, c.streams.Load() > 0, idle, nil
		}
		// A connection dialed but still waiting for its SETTINGS is waited for like a dial
		// in progress, under the same rule (burst.go).
		inDial := !fresh && (p.dialing > 0 || unsettled != nil)
		if inDial && !demand {
			demand = true
			p.demand++
		}
		if unsettled != nil && (p.coveredLocked() || p.fullLocked()) {
			p.mu.Unlock()
			if err := p.awaitSettings(ctx, unsettled); err != nil {
				return nil, false, 0, err
			}
			continue
		}
		// An auto pool whose target answered HTTP/1.1 lately dials no more (alpn.go); an
		// h2 connection it still has is used above (a gRPC call may take it).
		if p.opts.Auto && p.proto.Load() == protoHTTP1 && time.Since(p.lastProbe) < p.opts.ReprobeInterval {
			p.mu.Unlock()
			return nil, false, 0, ErrNegotiatedHTTP1
		}
		// While a connection is being dialed the request waits for it (and then for its
		// SETTINGS) rather than dialing its own, as Go's transport does, unless the dials
		// in progress cannot take every request waiting for them (burst.go); at MaxConns
		// it waits for a slot.
		if dialWait, full := inDial && p.coveredLocked(), p.fullLocked(); dialWait || full {
			// A dial on its way that can take the request is what it waits for; otherwise
			// it waits for a slot at MaxConns, a dial in progress or not (one that cannot
			// take it is for other requests).
			switch {
			case dialWait && !waitedDial:
				waitedDial = true
				p.counters.DialWaits++
			case !dialWait && !waitedSlot:
				waitedSlot = true
				p.counters.SlotWaits++
			}
			wake := p.wake
			p.mu.Unlock()
			select {
			case <-wake:
				continue
			case <-ctx.Done():
				if inDial {
					return nil, false, 0, reason.New(504, reason.ConnectTimeout, p.addr, fmt.Errorf("waiting for a new HTTP/2 connection to %s: %w", p.addr, context.Cause(ctx)))
				}
				return nil, false, 0, p.queueTimeout(ctx)
			}
		}
		p.dialing++
		p.lastProbe = time.Now()
		p.mu.Unlock()
		c, err = p.dial(ctx)
		p.mu.Lock()
		p.dialing--
		p.wakeLocked()
		if err != nil {
			if !errors.Is(err, ErrNegotiatedHTTP1) {
				p.counters.DialFailures++
			}
			p.mu.Unlock()
			return nil, false, 0, err
		}
		p.counters.Dials++
		if p.closed {
			p.mu.Unlock()
			c.cc.Close()
			return nil, false, 0, ErrClosed
		}
		p.conns = append(p.conns, c)
		ok := c.cc.ReserveNewRequest()
		if ok {
			if demand {
				demand = false
				p.demand--
			}
			c.active.Add(1)
			p.givenLocked(c)
		}
		p.mu.Unlock()
		if ok {
			return c, false, 0, nil
		}
	}
}

// pickLocked reserves a stream on the usable connection with the most streams in flight
// (so that idle connections age out), nil when none has a free slot. When none has but a
// connection is still waiting for its SETTINGS, that connection is returned as unsettled.
// Retiring connections take no streams; a spare (retire.go) takes one only when no other
// connection can, and is then a connection like the others (wasSpare reports it).
func (p *Pool) pickLocked() (c, unsettled *conn, wasSpare bool) {
	var now time.Time
	if p.opts.MaxLifetime > 0 {
		now = time.Now()
	}
	var spare *conn
	for i := len(p.conns) - 1; i >= 0; i-- {
		c := p.conns[i]
		if c.gone || c.dead || c.retiring != "" || (!now.IsZero() && p.expiredLocked(c, now)) {
			continue
		}
		if c.spare {
			spare = c
			continue
		}
		if c.active.Load() > 0 && !c.isSettled() {
			if !c.noWait {
				unsettled = c
			}
			continue
		}
		if c.cc.ReserveNewRequest() {
			p.givenLocked(c)
			return c, nil, false
		}
	}
	if spare != nil && spare.cc.ReserveNewRequest() {
		spare.spare = false
		p.givenLocked(spare)
		return spare, nil, true
	}
	return nil, unsettled, false
}

// awaitSettings waits until c's SETTINGS are applied (or its read side fails), ctx ends, or
// settingsWait passes, after which requests stop waiting for c.
func (p *Pool) awaitSettings(ctx context.Context, c *conn) error {
	t := time.NewTimer(settingsWait)
	defer t.Stop()
	select {
	case <-c.cc.settled:
		c.isSettled()
		return nil
	case <-ctx.Done():
		// As for a request that gave up waiting for the dial (get): nothing was sent.
		return reason.New(504, reason.ConnectTimeout, p.addr, fmt.Errorf("waiting for the SETTINGS of a new HTTP/2 connection to %s: %w", p.addr, context.Cause(ctx)))
	case <-t.C:
	}
	p.mu.Lock()
	c.noWait = true
	p.mu.Unlock()
	return nil
}

// dial opens a connection: TCP, TLS with ALPN h2 when configured, the HTTP/2 preface.
func (p *Pool) dial(ctx context.Context) (*conn, error) {
	if p.opts.Auto {
		return p.dialAuto(ctx)
	}
	if p.opts.ConnectTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, p.opts.ConnectTimeout)
		defer cancel()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", p.addr)
	if err != nil {
		return nil, reason.DialFailure(ctx, p.addr, fmt.Errorf("dial %s: %w", p.addr, err)) // as the HTTP/1.1 pool's
	}
	if p.opts.TLS != nil {
		tc, err := p.handshake(ctx, nc)
		if err != nil {
			return nil, err
		}
		nc = tc
	}
	return p.clientConn(nc)
}

// handshake runs the TLS handshake of a dial (protocol h2) and counts it: its reason, when
// it failed, is the HTTP/1.1 pool's (connpool), upstream_tls_certificate when the target's
// certificate failed verification, else upstream_tls_handshake (504 when time ran out).
func (p *Pool) handshake(ctx context.Context, nc net.Conn) (*tls.Conn, error) {
	// Each connection its own view of the session cache, as the HTTP/1.1 pool's (the gateway's
	// for a watched client certificate tags a session with the pair its connection presented).
	tc := tls.Client(nc, connpool.ConnConfig(p.opts.TLS))
	var re *reason.Error
	err := tc.HandshakeContext(ctx)
	st := tc.ConnectionState()
	switch {
	case err != nil:
		nc.Close()
		status, code := 502, reason.TLSHandshake
		if reason.CertificateFailed(err) {
			code = reason.TLSCertificate
		} else if reason.DialTimedOut(ctx, err) {
			status = 504 // as the HTTP/1.1 pool answers a handshake cut by time
		}
		re = reason.New(status, code, p.addr, fmt.Errorf("TLS handshake with %s: %w", p.addr, err))
	case st.NegotiatedProtocol != ALPNH2:
		tc.Close()
		re = reason.New(502, reason.TLSHandshake, p.addr, fmt.Errorf("%s did not agree to HTTP/2 (ALPN %q, want \"h2\"): set protocol: http1 or auto", p.addr, st.NegotiatedProtocol))
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	k := &p.counters
	switch {
	case re == nil && st.DidResume:
		k.TLSResumed++
	case re == nil:
		k.TLSFull++
	case re.Code == reason.TLSCertificate:
		k.TLSCertErrors++
	default:
		k.TLSHandshakeErrors++
	}
	if re != nil {
		return nil, re
	}
	return tc, nil
}

// checkBeforeStream PINGs c, idle past PingAfterIdle, before the caller's stream goes on it,
// and reports whether c may take the stream; c is retired when it did not answer. The PING
// is not bound to ctx: whether c is alive is for its answer to say, not for a client that
// went away while it was out (that used to retire a live connection, cutting the streams on
// it). A caller whose ctx ends first is given c at once (the library then returns the
// stream reservation of a canceled request, which a failed get could not), and the PING
// decides c's fate on its own. While the PING is out, requests that pick c wait for its
// outcome (awaitCheck) instead of putting their streams on a connection that may be stale:
// had they gone on, the retirement of a silent c would have cut them (the library's "force
// closed", not retryable), a failure caused by a stale pooled connection.
func (p *Pool) checkBeforeStream(ctx context.Context, c *conn, checking chan struct{}) bool {
	done := make(chan bool, 1)
	go func() {
		ok := p.ping(context.WithoutCancel(ctx), c, true)
		p.mu.Lock()
		close(checking)
		c.checking = nil
		p.mu.Unlock()
		done <- ok
	}()
	select {
	case ok := <-done:
		if !ok {
			c.active.Add(-1) // c is retired: the caller's reservation goes with it
		}
		return ok
	case <-ctx.Done():
		return true
	}
}

// awaitCheck waits for the outcome of the PING check of c that another request started
// (checkBeforeStream), and reports whether c may take the caller's stream. A caller whose
// ctx ends first is given c anyway: the library returns the stream reservation of a
// canceled request, which a failed get could not.
func (p *Pool) awaitCheck(ctx context.Context, c *conn, checking <-chan struct{}) bool {
	select {
	case <-checking:
	case <-ctx.Done():
		return true
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if c.gone {
		c.active.Add(-1)
		return false
	}
	return true
}

// ping sends a PING on c and waits up to PingTimeout; a connection that does not answer is
// retired (ping_timeout). check says whether it was the check before a new stream.
func (p *Pool) ping(ctx context.Context, c *conn, check bool) bool {
	ctx, cancel := context.WithTimeout(ctx, p.opts.PingTimeout)
	defer cancel()
	err := c.cc.Ping(ctx)
	p.mu.Lock()
	defer p.mu.Unlock()
	if check {
		p.counters.PingChecks++
	} else {
		p.counters.ReadIdlePings++
	}
	if err == nil {
		return true
	}
	p.counters.PingFailures++
	p.retireLocked(c, ClosePingTimeout, time.Now())
	p.log.Info("HTTP/2 connection retired: PING unanswered", "conn", c.id, "check_before_stream", check, "err", err)
	return false
}

// Close closes every connection (in-flight streams fail) and stops the sweeper; why is
// recorded as their close reason.
func (p *Pool) Close(why CloseReason) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return
	}
	p.closed = true
	close(p.stop)
	now := time.Now()
	for _, c := range p.conns {
		p.retireLocked(c, why, now)
	}
	p.conns = nil
}
