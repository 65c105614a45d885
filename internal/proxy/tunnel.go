package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/h1"
	"sluice/internal/netio"
	"sluice/internal/reason"
	"sluice/internal/upstream"
)

// A tunnel is what a request becomes when it asked to upgrade its protocol (WebSocket) and
// the backend answered 101 Switching Protocols: the client's connection and the upstream
// connection carry bytes both ways until one side closes, the tunnel idles past its route's
// idle_timeout, reaches max_lifetime, or is stopped (shutdown grace over, its route removed
// or changed by a reload). Two goroutines copy, one per direction (this request's and one
// more). The upstream connection never returns to the pool.
//
// A stop ends a WebSocket tunnel cleanly where it can: each direction's copier tracks frame
// boundaries (RFC 6455 §5.2), and when a direction is between frames the stop writes a Close
// frame with status 1001 (going away) into it, so that both ends see a close, not a reset,
// and clients reconnect. A direction stopped in the middle of a frame gets no Close frame.
// Then the stop closes lingeringly, as the server does after an early response
// (server.lingerClose): it shuts down the sending side of both connections (a FIN after the
// Close frame), and each copier reads and drops what its source still sends until the source
// sends its Close frame or ends, for lingerTunnel at most. Closing at once, with bytes a peer
// sent after the 1001 unread, made a reset, which can destroy the Close frame before the
// peer reads it.

// Tunnel close reasons, in the access log and metrics.
const (
	TunnelClientClosed   = "client_closed"
	TunnelUpstreamClosed = "upstream_closed"
	TunnelIdle           = "idle_timeout"
	TunnelMaxLifetime    = "max_lifetime"
	TunnelShutdown       = "shutdown"
	TunnelRouteChanged   = "route_changed"
	TunnelError          = "error"
)

// tunnelPolicy is a route's compiled config.Tunnel.
type tunnelPolicy struct {
	protocols []string // lower case
	idle      time.Duration
	maxLife   time.Duration
}

func newTunnelPolicy(t config.Tunnel) tunnelPolicy {
	return tunnelPolicy{protocols: t.Protocols, idle: t.IdleTimeout.D(), maxLife: t.MaxLifetime.D()}
}

// allows reports whether the route forwards an upgrade to proto.
func (tp *tunnelPolicy) allows(proto []byte) bool {
	for _, p := range tp.protocols {
		if h1.EqualFold(proto, p) {
			return true
		}
	}
	return false
}

// upgradeProtocol returns the protocol name of an Upgrade field value ("websocket" of
// "websocket" or "WebSocket/13, other"): its first element without a version.
func upgradeProtocol(v []byte) []byte {
	for i, c := range v {
		if c == ',' || c == '/' || c == ' ' || c == '\t' {
			return v[:i]
		}
	}
	return v
}

// upgradeElement returns the first element of an Upgrade field value ("WebSocket/13" of
// "WebSocket/13, h2c").
func upgradeElement(v []byte) []byte {
	if i := bytes.IndexByte(v, ','); i >= 0 {
		v = bytes.TrimRight(v[:i], " \t")
	}
	return v
}

// checkSwitch reports why a 101 response is not a switch to offered, the protocol the
// request offered, or nil. RFC 9110 §15.2.2 has the server name the protocol in Upgrade, and
// §7.8 forbids one the request did not offer; for WebSocket, RFC 6455 §4.1 has the client
// fail a handshake whose Sec-WebSocket-Accept does not answer its Sec-WebSocket-Key. A 101
// that is not a real handshake (an application passing on a status code it was given) would
// otherwise give the client a raw connection to the backend, past the gateway's routes and
// rules ("WebSocket smuggling"), so the gateway checks what its client would.
func checkSwitch(req *h1.Header, resp *h1.Response, offered []byte) error {
	upv, _ := resp.Header.Get("Upgrade")
	proto := upgradeProtocol(offered)
	switch {
	case len(upv) == 0:
		return errors.New("101 Switching Protocols without an Upgrade field")
	case !h1.EqualFold(upgradeProtocol(upgradeElement(upv)), proto):
		return fmt.Errorf("101 Switching Protocols to %q, which the request did not offer", upv)
	case !h1.EqualFold(proto, "websocket"):
		return nil
	}
	key, _ := req.Get("Sec-WebSocket-Key")
	accept, _ := resp.Header.Get("Sec-WebSocket-Accept")
	if len(key) == 0 || string(accept) != wsAccept(key) {
		return fmt.Errorf("101 Switching Protocols with Sec-WebSocket-Accept %q, which does not answer the request's Sec-WebSocket-Key %q", accept, key)
	}
	return nil
}

// wsAccept is the Sec-WebSocket-Accept that answers key (RFC 6455 §4.2.2).
func wsAccept(key []byte) string {
	h := sha1.New()
	h.Write(key)
	h.Write([]byte("258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// TunnelInfo describes an open tunnel, for the admin API.
type TunnelInfo struct {
	Route     string    `json:"route"`
	Protocol  string    `json:"protocol"`
	Client    string    `json:"client"`
	Target    string    `json:"target"`
	Opened    time.Time `json:"opened"`
	BytesUp   int64     `json:"bytes_up"`   // client to upstream
	BytesDown int64     `json:"bytes_down"` // upstream to client
	RequestID string    `json:"request_id"`
}

// TunnelObserver is told when tunnels open and close (metrics implement it).
type TunnelObserver interface {
	TunnelOpened(route, protocol string)
	TunnelClosed(route, protocol, why string, bytesUp, bytesDown int64)
}

// SetTunnelObserver sets who is told of tunnels (nil: nobody). Call it before serving.
func (p *Proxy) SetTunnelObserver(o TunnelObserver) { p.tunnelObs = o }

// Tunnels lists the open tunnels.
func (p *Proxy) Tunnels() []TunnelInfo {
	var out []TunnelInfo
	p.open.Range(func(k, _ any) bool {
		tu := k.(*tunnel)
		out = append(out, TunnelInfo{Route: tu.rt.ID, Protocol: tu.proto, Client: tu.clientAddr,
			Target: tu.target, Opened: tu.opened, BytesUp: tu.up.n.Load(), BytesDown: tu.down.n.Load(), RequestID: tu.reqID})
		return true
	})
	return out
}

// routeTunnels lets the gateway stop a route's tunnels when a reload removes or changes it.
// A reload that keeps the route unchanged but builds a new Route for it hands the tunnels
// over (HandTunnelsTo), so that a later reload that changes the route finds them.
type routeTunnels struct {
	mu      sync.Mutex
	open    map[*tunnel]struct{}
	stopped bool
	next    *Route // where the tunnels went (HandTunnelsTo); later ones follow
}

// CloseTunnels stops the route's open tunnels (WebSocket ones with a 1001 Close frame) and
// any opened later. The gateway calls it when a reload removed or changed the route and the
// shutdown grace has passed.
func (rt *Route) CloseTunnels() {
	rt.tunnels.mu.Lock()
	rt.tunnels.stopped = true
	open := make([]*tunnel, 0, len(rt.tunnels.open))
	for tu := range rt.tunnels.open {
		open = append(open, tu)
	}
	rt.tunnels.mu.Unlock()
	stopAll(open, TunnelRouteChanged)
}

// stopAll stops tunnels side by side: each stop may wait for its Close frames
// (closeFrameWait), and those waits must not add up.
func stopAll(tunnels []*tunnel, why string) {
	var wg sync.WaitGroup
	for _, tu := range tunnels {
		wg.Go(func() { tu.stop(why) })
	}
	wg.Wait()
}

// HandTunnelsTo moves the route's open tunnels, and any opened later, to next: the route
// built for the same, unchanged config by the generation that replaced rt's. A later
// CloseTunnels on next (or on the route next hands them to) stops them.
func (rt *Route) HandTunnelsTo(next *Route) {
	if next == rt {
		return
	}
	var stop []*tunnel
	rt.tunnels.mu.Lock()
	for tu := range rt.tunnels.open {
		if !next.addTunnel(tu) {
			stop = append(stop, tu)
		}
	}
	rt.tunnels.open, rt.tunnels.next = nil, next
	rt.tunnels.mu.Unlock()
	stopAll(stop, TunnelRouteChanged)
}

// addTunnel records tu as one of rt's (or of the route rt handed its tunnels to) and
// reports false when that route's tunnels were stopped. Locks are taken from older routes
// to newer ones only.
func (rt *Route) addTunnel(tu *tunnel) bool {
	rt.tunnels.mu.Lock()
	defer rt.tunnels.mu.Unlock()
	if rt.tunnels.next != nil {
		return rt.tunnels.next.addTunnel(tu)
	}
	if rt.tunnels.stopped {
		return false
	}
	if rt.tunnels.open == nil {
		rt.tunnels.open = map[*tunnel]struct{}{}
	}
	rt.tunnels.open[tu] = struct{}{}
	tu.home.Store(rt)
	return true
}

// leave forgets tu at the route that holds it now.
func (tu *tunnel) leave() {
	for {
		rt := tu.home.Load()
		if rt == nil {
			return
		}
		rt.tunnels.mu.Lock()
		if tu.home.Load() == rt { // not moved on meanwhile
			delete(rt.tunnels.open, tu)
			tu.home.Store(nil)
			rt.tunnels.mu.Unlock()
			return
		}
		rt.tunnels.mu.Unlock()
	}
}

// tunnel is one open tunnel.
type tunnel struct {
	rt     *Route
	proto  string
	target string
	reqID  string
	opened time.Time
	client net.Conn
	ws     bool
	// clientAddr is the client for the admin API: the connection's peer, or the client a
	// trusted proxy named (PROXY header, X-Forwarded-For), as in the access log, without
	// the port, which the gateway is not told.
	clientAddr string

	up, down direction // client to upstream, upstream to client

	home       atomic.Pointer[Route]  // the route that holds it (routeTunnels), nil once removed
	lastActive atomic.Int64           // unix nanoseconds of the last byte either way
	why        atomic.Pointer[string] // the stop's reason (stop): set once, by the first stop
	// closed is the side that closed the tunnel (TunnelClientClosed, TunnelUpstreamClosed):
	// set once, before any stop, by the first WebSocket Close frame (its source began the
	// closing handshake, whichever side then closed TCP first: RFC 6455 §7.1.1 has the
	// server close first, normally) or by the first clean end (EOF). The other side's close
	// in answer does not count, nor does a failed write that comes after it. byFrame says a
	// Close frame set it: a half-close (EOF) of a tunnel that then idles out or is stopped
	// names the stop, as the other direction was still open (reason).
	closed    atomic.Pointer[string]
	byFrame   atomic.Bool
	closeOnce sync.Once
	shut      chan struct{} // closed by closeAll: both connections are closed
	// lingerEnd is the timer that ends a stop's lingering close (closeAll): it bounds the
	// copiers' reads past the stop; the tunnel's end stops it.
	lingerEnd atomic.Pointer[time.Timer]
}

// direction copies one way. mu serialises writes to dst between the copier and a stop's
// Close frame.
type direction struct {
	side   string // the reason when its source closes first (tunnel.closed)
	src    *bufio.Reader
	srcNC  net.Conn // src's connection, for read deadlines
	dst    net.Conn
	mask   bool // frames written into this direction are masked (client to server)
	n      atomic.Int64
	mu     sync.Mutex
	frames wsFrames
	ended  bool // guarded by mu: no more writes
	// streaming: the last read was long (smallRead); the copier's alone.
	streaming bool
}

// runTunnel relays the 101 response and then runs the tunnel until it ends. It returns the
// result of the request and the outcome of the upstream connection (never reused).
func (p *Proxy) runTunnel(cl *call, t *upstream.Target, c *connpool.Conn, resp *h1.Response) (result, connpool.Outcome) {
	fwd, ds, rt := &cl.fwd, cl.fwd.ds, cl.fwd.rt
	out := failed(connpool.CloseUpgraded)
	tn, ok := ds.(Tunneler)
	if !ok {
		return result{err: reason.New(502, reason.BadResponse, t.Addr, errors.New("the client connection cannot carry a protocol upgrade"))}, out
	}
	if err := checkSwitch(&fwd.req.Header, resp, fwd.upgrade); err != nil {
		return result{err: reason.New(502, reason.BadResponse, t.Addr, err)}, failed(connpool.CloseProtocolError)
	}
	upv, _ := resp.Header.Get("Upgrade")
	upgrade := string(upv)
	resp.Header.RemoveHopByHop()
	resp.Header.Del("Content-Length")
	resp.Header.Add("Connection", "Upgrade")
	resp.Header.Add("Upgrade", upgrade)
	if err := ds.WriteHead(101, resp.Reason, &resp.Header, h1.LengthNone); err != nil {
		return result{err: reason.New(499, reason.ClientBodyError, t.Addr, err), clientGone: true}, out
	}
	client, buffered, err := tn.Tunnel()
	if err != nil {
		return result{err: reason.New(499, reason.ClientBodyError, t.Addr, err), clientGone: true}, out
	}
	proto := strings.ToLower(string(upgradeProtocol(fwd.upgrade)))
	tu := &tunnel{rt: rt, proto: proto, target: t.Addr, reqID: string(ds.RequestIDBytes()), opened: time.Now(),
		client: client, ws: proto == "websocket", clientAddr: client.RemoteAddr().String(), shut: make(chan struct{})}
	if host, _, err := net.SplitHostPort(tu.clientAddr); fwd.clientIP != "" && (err != nil || host != fwd.clientIP) {
		tu.clientAddr = fwd.clientIP
	}
	up := c.NetConn()
	br, ok := buffered.(*bufio.Reader)
	if !ok {
		br = bufio.NewReader(buffered)
	}
	tu.up = direction{side: TunnelClientClosed, src: br, srcNC: client, dst: up, mask: true}
	tu.down = direction{side: TunnelUpstreamClosed, src: c.R, srcNC: up, dst: client}
	tu.lastActive.Store(tu.opened.UnixNano())
	if !rt.addTunnel(tu) {
		tu.stop(TunnelRouteChanged)
	}
	defer tu.leave()
	p.open.Store(tu, struct{}{})
	defer p.open.Delete(tu)
	if p.tunnelObs != nil {
		p.tunnelObs.TunnelOpened(rt.ID, proto)
	}

	// The request's cancellation (forced shutdown) stops the tunnel cleanly instead of
	// closing the upstream under it. The hook returns when the connections are closed (its
	// lingering close is over, lingerTunnel at most): the server closes the client's
	// connection after it.
	cl.inUse.Store(nil)
	defer cl.inUse.Store(c)
	shutdown := func() {
		tu.stop(TunnelShutdown)
		<-tu.shut
	}
	if n, ok := ds.(CancelNotifier); ok {
		n.OnCancel(shutdown)
		defer n.OnCancel(cl.interrupt)
	} else {
		defer context.AfterFunc(ds.Context(), shutdown)()
	}
	if d := rt.tunnel.maxLife; d > 0 {
		timer := time.AfterFunc(d, func() { tu.stop(TunnelMaxLifetime) })
		defer timer.Stop()
	}

	done := make(chan struct{})
	go func() { tu.copy(&tu.up); close(done) }()
	tu.copy(&tu.down)
	<-done
	tu.closeAll()
	if t := tu.lingerEnd.Load(); t != nil {
		t.Stop()
	}
	// Each copier ended by a clean end (closed set, or found set) or by a stop (why set).
	why := tu.reason()
	rec := cl.r.rec
	rec.Tunnel = TunnelRecord{Protocol: proto, BytesUp: tu.up.n.Load(), BytesDown: tu.down.n.Load(), Closed: why, Duration: time.Since(tu.opened)}
	if p.tunnelObs != nil {
		p.tunnelObs.TunnelClosed(rt.ID, proto, why, rec.Tunnel.BytesUp, rec.Tunnel.BytesDown)
	}
	return result{}, out
}

// copy moves bytes from d.src to d.dst until the source ends or fails, or a stop or the
// other direction ends it. A clean end half-closes the destination, so the other side sees
// the close and the other direction can finish; a failure stops the tunnel.
func (tu *tunnel) copy(d *direction) {
	var bp *[]byte // the copy buffer, held only while bytes stream (read)
	defer func() {
		if bp != nil {
			copyBufs.Put(bp)
		}
	}()
	idle := tu.rt.tunnel.idle
	writeTimeout := max(idle, time.Minute)
	for {
		if w := tu.why.Load(); w != nil && !tu.closesCleanly(*w) {
			return
		}
		if idle > 0 {
			// Lazily (netio.ExtendRead): a busy tunnel re-arms its timers a few times a
			// second, not for every message; the idle close may come up to Slack late.
			last := time.Unix(0, tu.lastActive.Load())
			netio.ExtendRead(d.srcNC, last.Add(idle), netio.Slack(idle))
		}
		if w := tu.why.Load(); w != nil && !tu.closesCleanly(*w) { // a stop that came before the deadline was armed
			return
		}
		// After a stop that closes cleanly the copier reads on: what it reads once the
		// stop's Close frame went to d.dst (d.ended) is dropped (linger).
		n, err := d.read(&bp)
		if n > 0 {
			buf := *bp
			now := time.Now()
			tu.lastActive.Store(now.UnixNano())
			d.mu.Lock()
			if d.ended {
				d.mu.Unlock()
				if w := tu.why.Load(); err == nil && w != nil && tu.closesCleanly(*w) {
					tu.linger(d, &bp, buf[:n])
				}
				return
			}
			if tu.ws {
				d.frames.feed(buf[:n])
				if d.frames.closed {
					tu.closedBy(d, true)
				}
			}
			netio.ExtendWrite(d.dst, now.Add(writeTimeout), netio.Slack(writeTimeout))
			_, werr := d.dst.Write(buf[:n])
			d.mu.Unlock()
			d.n.Add(int64(n))
			if werr != nil {
				tu.stop(TunnelError)
				return
			}
		}
		switch {
		case err == nil:
		case errors.Is(err, io.EOF):
			tu.closedBy(d, false)
			// The source's close goes on to d.dst, unless a stop that closes cleanly is
			// under way: its Close frame goes first (closeFrame shuts d.dst down after it).
			d.mu.Lock()
			if w := tu.why.Load(); !d.ended && (w == nil || !tu.closesCleanly(*w)) {
				d.ended = true
				netio.CloseWrite(d.dst)
			}
			d.mu.Unlock()
			return
		case isTimeout(err) && tu.why.Load() == nil:
			if time.Since(time.Unix(0, tu.lastActive.Load())) >= idle {
				tu.stop(TunnelIdle)
				tu.linger(d, &bp, nil)
				return
			}
		default:
			if w := tu.why.Load(); w != nil && tu.closesCleanly(*w) && isTimeout(err) {
				tu.linger(d, &bp, nil) // the idle deadline passed during a stop
				return
			}
			tu.stop(d.side) // reset or closed under us (a no-op after a stop)
			return
		}
	}
}

// linger reads and drops what d's source sends after a stop's Close frame (p: read
// already), until the source sends its own Close frame (it sends nothing after it: RFC 6455
// §5.5.1) or ends, lingerTunnel and lingerTunnelBytes at most. The stop's timer (lingerEnd)
// closes the connections when a quiet source holds the read longer. Only once the stop is
// done with d (d.ended): the frame tracker must follow what d.dst got until then.
func (tu *tunnel) linger(d *direction, bp **[]byte, p []byte) {
	d.srcNC.SetReadDeadline(time.Now().Add(lingerTunnel))
	for dropped := len(p); ; {
		d.mu.Lock()
		ended := d.ended
		if ended {
			d.frames.feed(p)
		}
		closed := d.frames.closed
		d.mu.Unlock()
		if !ended || closed || dropped >= lingerTunnelBytes {
			return
		}
		n, err := d.read(bp)
		if err != nil {
			return
		}
		p = (**bp)[:n]
		dropped += n
	}
}

// closedBy records d's source as the side that closed the tunnel, by a Close frame or its
// clean end (EOF), unless a side did before or the tunnel was stopped.
func (tu *tunnel) closedBy(d *direction, frame bool) {
	if tu.closed.Load() == nil && tu.why.Load() == nil && tu.closed.CompareAndSwap(nil, &d.side) && frame {
		tu.byFrame.Store(true)
	}
}

// reason is why the tunnel ended, once both copiers are done: the side whose Close frame
// began the closing handshake; else a stop (idle, shutdown, route change, lifetime) that
// came after one side's half-close, since the other direction was still in use; else the
// side that closed first, over the failed write that its close may have caused (error);
// else the stop's reason.
func (tu *tunnel) reason() string {
	c, w := tu.closed.Load(), tu.why.Load()
	switch {
	case c != nil && (tu.byFrame.Load() || w == nil || *w == TunnelError):
		return *c
	case w != nil:
		return *w
	}
	return TunnelError
}

// smallRead: a read shorter than this says the source paused (a message, not a stream), so
// the next wait for bytes holds no copy buffer (direction.read).
const smallRead = 2 << 10

// read reads from d.src into the copy buffer *bp, taking one from copyBufs when it holds
// none. After a short read (smallRead: most WebSocket messages) it first waits for bytes in
// d.src's own buffer (Peek) with the copy buffer given back, so that an idle tunnel holds
// neither of its two 32 KiB buffers, which were more than half of its memory. The wait costs
// no system call: the Peek makes the read the Read would have made, and the Read copies from
// the reader's buffer. A stream (long reads) reads straight into the copy buffer.
func (d *direction) read(bp **[]byte) (int, error) {
	if !d.streaming && d.src.Buffered() == 0 {
		if *bp != nil {
			copyBufs.Put(*bp)
			*bp = nil
		}
		if _, err := d.src.Peek(1); err != nil {
			return 0, err
		}
	}
	if *bp == nil {
		*bp = copyBufs.Get().(*[]byte)
	}
	n, err := d.src.Read(**bp)
	d.streaming = n >= smallRead
	return n, err
}

// stop ends the tunnel with why (the first stop wins). A WebSocket stop that closes cleanly
// (closesCleanly) writes a Close frame (1001) into each direction between frames and shuts
// down the sending sides; the copiers linger, and the connections close when both are done
// or lingerTunnel has passed. Any other stop, or Close frames not written in time, closes
// both connections at once, which wakes the copiers.
func (tu *tunnel) stop(why string) {
	if !tu.why.CompareAndSwap(nil, &why) {
		return
	}
	if tu.closesCleanly(why) && tu.closeFrames() {
		t := time.AfterFunc(lingerTunnel, tu.closeAll)
		tu.lingerEnd.Store(t)
		select {
		case <-tu.shut: // the tunnel ended meanwhile
			t.Stop()
		default:
		}
		return
	}
	tu.closeAll()
}

// closesCleanly reports whether a stop for why ends the tunnel with Close frames and a
// lingering close: a WebSocket tunnel stopped by the gateway, not by a failure.
func (tu *tunnel) closesCleanly(why string) bool {
	return tu.ws && (why == TunnelShutdown || why == TunnelRouteChanged || why == TunnelMaxLifetime || why == TunnelIdle)
}

// closeFrames writes the stop's Close frames and reports whether both directions were done
// in time. A copier blocked writing to a peer that does not read holds its direction's lock
// for up to its write timeout (an hour by default): the wait lasts closeFrameWait at most,
// then the stop closes under it (which ends that write).
func (tu *tunnel) closeFrames() bool {
	wrote := make(chan struct{}, 2)
	for _, d := range []*direction{&tu.up, &tu.down} {
		go func() { d.closeFrame(); wrote <- struct{}{} }()
	}
	timeout := time.NewTimer(closeFrameWait)
	defer timeout.Stop()
	for range 2 {
		select {
		case <-wrote:
		case <-timeout.C:
			return false
		}
	}
	return true
}

// closeFrameWait bounds how long a stop waits to write its Close frames (and each frame's
// write): a peer that does not read gets no clean close.
const closeFrameWait = time.Second

// lingerTunnel and lingerTunnelBytes bound a stop's lingering close: how long the copiers
// read past the Close frames, and how much each drops. A second, as closeFrameWait: the
// server's own lingering close allows 2 s (server.lingerTime), but a stop that waited for
// its Close frames already used up to one, and a shutdown waits for both. The byte bound is
// the server's (lingerMaxBytes): a peer that sends on at full speed cannot make the gateway
// read for it without limit.
const (
	lingerTunnel      = time.Second
	lingerTunnelBytes = 64 << 20
)

// closeFrame writes a WebSocket Close frame with status 1001 (going away) into d when d is
// between frames, ends d's writes and shuts down the sending side of d.dst (a FIN, or a TLS
// close_notify, after the frame).
func (d *direction) closeFrame() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.ended {
		return
	}
	d.ended = true
	defer netio.CloseWrite(d.dst)
	if !d.frames.atBoundary() || d.frames.closed {
		return // mid-frame, or its source sent a Close frame already (RFC 6455 §5.5.1)
	}
	frame := []byte{0x88, 0x02, 0x03, 0xe9} // FIN + Close, 2 bytes: 1001
	if d.mask {
		// Frames from a client are masked (RFC 6455 §5.3); a zero key leaves the payload as is.
		frame = []byte{0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe9}
	}
	d.dst.SetWriteDeadline(time.Now().Add(closeFrameWait))
	d.dst.Write(frame)
}

func (tu *tunnel) closeAll() {
	tu.closeOnce.Do(func() {
		tu.client.Close()
		tu.up.dst.Close()
		close(tu.shut)
	})
}

// TunnelRecord is what the access log says about a tunnel.
type TunnelRecord struct {
	Protocol  string
	BytesUp   int64 // client to upstream
	BytesDown int64 // upstream to client
	Closed    string
	Duration  time.Duration
}

// wsFrames follows the frame boundaries of a WebSocket byte stream (RFC 6455 §5.2) without
// keeping the payload: it needs only the header of each frame.
type wsFrames struct {
	hdr    [14]byte
	have   int    // header bytes collected
	left   uint64 // payload bytes left of the current frame
	closed bool   // a Close frame's header went by: its sender sends nothing more
}

// feed advances over p.
func (f *wsFrames) feed(p []byte) {
	for len(p) > 0 {
		if f.left > 0 {
			k := uint64(len(p))
			if k > f.left {
				k = f.left
			}
			f.left -= k
			p = p[k:]
			continue
		}
		f.hdr[f.have] = p[0]
		f.have++
		p = p[1:]
		if need := f.headerLen(); need > 0 && f.have == need {
			f.left = f.payloadLen()
			f.have = 0
			f.closed = f.closed || f.hdr[0]&0x0f == 0x8
		}
	}
}

// headerLen is the header's length once enough of it is known, else 0.
func (f *wsFrames) headerLen() int {
	if f.have < 2 {
		return 0
	}
	n := 2
	switch f.hdr[1] & 0x7f {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if f.hdr[1]&0x80 != 0 {
		n += 4
	}
	return n
}

func (f *wsFrames) payloadLen() uint64 {
	switch l := f.hdr[1] & 0x7f; l {
	case 126:
		return uint64(f.hdr[2])<<8 | uint64(f.hdr[3])
	case 127:
		var v uint64
		for _, b := range f.hdr[2:10] {
			v = v<<8 | uint64(b)
		}
		return v
	default:
		return uint64(l)
	}
}

func (f *wsFrames) atBoundary() bool { return f.have == 0 && f.left == 0 }
