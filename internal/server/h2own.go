package server

// Sluice's own HTTP/2 server connection.
//
// One read loop per connection reads frames with golang.org/x/net/http2's Framer (frame
// parsing and its per-frame validation: lengths, padding, stream id 0 rules, the order of a
// header block's frames) and decodes header blocks with x/net's hpack.Decoder into the
// Stream's own buffer. It keeps the stream states, both directions of flow control, the
// SETTINGS, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE and PRIORITY rules of RFC 9113 and the
// listener's limits (the per-second counters, CONTINUATION frames per block, the header
// list bound), each counted and logged.
// Streams are served on long-lived workers, with no hand-off per frame: a stream builds its
// response frames in its own buffer (HPACK without the dynamic table, so order does not
// matter) and appends them to the connection's output, which one writer goroutine sends,
// many streams' frames per write. docs/design.md ("HTTP/2 downstream: an own server
// connection") has why and the numbers.

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sluice/internal/h1"
	"sluice/internal/reason"
)

const (
	// h2MaxOut bounds the connection's unsent output: a stream appending more waits.
	h2MaxOut = 256 << 10
	// h2MaxQueued bounds the output the read loop adds (acknowledgements, resets) to a
	// client that does not read it.
	h2MaxQueued = 4 * h2MaxOut
	// h2Linger is how long a closing connection reads (and drops) what the client still
	// sends after the last GOAWAY went out, so that a close does not reset it; it reads
	// lingerMaxBytes at most, as HTTP/1.1's lingering close does.
	h2Linger = time.Second
	// maxWindow is the largest flow-control window (RFC 9113 §6.9.1).
	maxWindow = 1<<31 - 1
)

// h2Own is one HTTP/2 connection served by the own codec.
type h2Own struct {
	h   *h2Conn
	c   *conn
	st  *H2Settings
	nc  net.Conn // frames go here: the TLS connection, or the TCP one
	br  *bufio.Reader
	src stampReader // what br reads from
	fr  *http2.Framer
	dec *hpack.Decoder
	lim h2Limits

	streamWin int64 // the receive window advertised per stream
	connWin   int64 // the connection's receive window
	maxList   int   // the decoded header list bound (an HPACK bomb is cut there)

	// Read loop only.
	maxID                  uint32 // the highest client stream id seen
	blk                    h2Block
	winStart               time.Time
	resets, control, empty int
	conts                  int
	recent                 [16]uint32 // the last stream ids opened
	nrecent                uint32
	trailer                h1.Header // a trailer block being decoded
	maxRead                uint32    // SETTINGS_MAX_FRAME_SIZE we announced
	big                    []byte    // a frame payload larger than the read buffer
	calm                   bool      // a limit ended the connection outside count: stop reading
	// answered: stream frames (HEADERS, DATA) went out since the client's last PING, which
	// then does not count against the control frames per second (count).
	answered atomic.Bool
	rlHeld   bool    // the read loop holds o.mu (lockR)
	rlBody   *Stream // the stream whose body lock (rmu) the read loop holds (lockBody)

	dmu sync.Mutex // serializes deadline changes and the close of nc
	// lingerSet: the writer sent the last GOAWAY and set the read deadline of the linger
	// after it (h2Linger), which no later read deadline replaces (setReadDeadline). Under dmu.
	lingerSet bool

	mu       sync.Mutex
	wcond    sync.Cond // the writer waits for output
	space    sync.Cond // streams wait for window or output space
	streams  map[uint32]*Stream
	connSend int64 // the client's connection window for our DATA
	initSend int64 // the client's SETTINGS_INITIAL_WINDOW_SIZE
	maxFrame int   // the client's SETTINGS_MAX_FRAME_SIZE
	recvUsed int64 // connection DATA bytes received and not yet given back
	recvPend int64 // of those, consumed and to be given back by the next WINDOW_UPDATE
	out      []byte
	spare    []byte
	werr     error // the write side failed: every write fails
	closing  bool  // the writer closes the sending side once out is sent
	final    bool  // the last GOAWAY went out: no new streams
	sent1    bool  // the drain's first GOAWAY went out
	idle     *time.Timer
	// cut is why the gateway ended the connection (fail: a protocol error, a limit), the
	// cause its streams in flight end with; nil when the client ended it (errClientGone).
	cut *reason.Error
	// resetSent are the last streams the server sent RST_STREAM for (noteResetLocked): a
	// HEADERS frame the client sent on one before it read the reset is a stream error.
	resetSent  [32]uint32
	nresetSent uint32
	// taken is the highest stream id taken in (dispatched to a handler): a GOAWAY names it
	// as the last stream processed. Not maxID: a stream whose header block is still being
	// read, or that is about to be admitted, has not been taken, and a GOAWAY naming it would
	// tell the client it may have been processed (no retry) while it is then ignored.
	taken   uint32
	wg      sync.WaitGroup // streams being served
	writing bool           // a write is under way (the writer's, or a stream's own: endOwn)

	overQueued atomic.Bool // checkQueuedLocked found the client not reading
	wto        time.Duration
	wdl        time.Time
}

// h2Block is the header block being decoded.
type h2Block struct {
	id        uint32
	s         *Stream // a new stream's (nil: trailers or discarded)
	trailers  bool
	endStream bool
	err       http2.ErrCode // a stream error found in the block (0: none)
	errWhy    string
	size      int // RFC 9113 §6.5.2 size of the decoded list
	big       bool
	regular   bool // a regular field was seen (pseudo fields must come first)
	pseudo    [4]span
	has       uint8 // bits: pseudo fields seen (method, scheme, path, authority)
	host      span
	hasHost   bool
	clen      int64 // content-length (-1: none)
	fields    []spanField
	at        time.Time // when its HEADERS frame was read: its stream's Start
}

type span struct{ a, b int }

type spanField struct{ n, v span }

const (
	psMethod = iota
	psScheme
	psPath
	psAuthority
)

// newH2Own sets up the own codec's connection; serve runs it.
func newH2Own(h *h2Conn, nc net.Conn, pre []byte) *h2Own {
	c, st := h.c, h.c.st.H2
	o := &h2Own{h: h, c: c, st: st, nc: nc,
		lim: h2Limits{resets: st.MaxResetsPerSecond, control: st.MaxControlPerSecond,
			empty: st.MaxEmptyPerSecond, continuations: st.MaxContinuations},
		streamWin: int64(st.StreamWindow), connWin: int64(st.ConnWindow),
		maxList: 2*c.st.Limits.MaxHeaderBytes + 320,
		streams: map[uint32]*Stream{}, connSend: 65535, initSend: 65535, maxFrame: 16384,
		wto: c.st.WriteTimeout}
	if o.streamWin < 65535 {
		o.streamWin = 65535 // the client may use the default until it has our SETTINGS
	}
	if o.connWin < 65535 {
		o.connWin = 65535
	}
	o.wcond.L, o.space.L = &o.mu, &o.mu
	o.src.r = nc
	if len(pre) > 0 {
		o.src.r = io.MultiReader(bytes.NewReader(pre), nc)
	}
	o.src.at = time.Now()
	o.br = bufio.NewReaderSize(&o.src, 32<<10)
	o.fr = http2.NewFramer(nil, o.br)
	o.fr.SetReuseFrames()
	o.maxRead = max(st.MaxFrameBytes, 16384)
	o.fr.SetMaxReadFrameSize(o.maxRead)
	o.dec = hpack.NewDecoder(4096, o.field)
	o.dec.SetMaxStringLength(o.maxList)
	o.blk.clen = -1

	// Our SETTINGS and the connection window first, then the client's preface.
	o.mu.Lock()
	var sb [6 * 4]byte
	put := func(i int, id http2.SettingID, v uint32) {
		binary.BigEndian.PutUint16(sb[6*i:], uint16(id))
		binary.BigEndian.PutUint32(sb[6*i+2:], v)
	}
	put(0, http2.SettingMaxConcurrentStreams, st.MaxConcurrentStreams)
	put(1, http2.SettingInitialWindowSize, uint32(st.StreamWindow))
	put(2, http2.SettingMaxFrameSize, max(st.MaxFrameBytes, 16384))
	put(3, http2.SettingMaxHeaderListSize, uint32(o.maxList))
	o.out = appendFrame(o.out, frameSettings, 0, 0, sb[:])
	if st.ConnWindow > 65535 {
		o.out = appendWindowUpdate(o.out, 0, uint32(st.ConnWindow-65535))
	}
	o.idle = time.AfterFunc(o.idleTimeout(), o.idleFired)
	o.mu.Unlock()
	return o
}

// serve serves the connection until it ends.
func (o *h2Own) serve() {
	writerDone := make(chan struct{})
	go o.writeLoop(writerDone)

	o.readSafely()
	o.mu.Lock()
	linger := o.closing && o.werr == nil
	o.mu.Unlock()
	if linger {
		// The last GOAWAY is on its way: the writer sends it and shuts the sending side
		// (then h2Linger more); what the client still sends meanwhile is dropped, so that
		// a client that is still writing is not reset before it read the GOAWAY. This
		// bound does not replace the writer's if it finished since (setReadDeadline).
		o.setReadDeadline(time.Now().Add(h2Linger + max(o.wto, h2Linger)))
		io.CopyN(io.Discard, o.br, lingerMaxBytes)
	}

	// The end: every stream is canceled, the writer stops, the handlers return.
	o.mu.Lock()
	o.idle.Stop()
	cause := errClientGone
	if o.cut != nil {
		cause = o.cut
	}
	if o.werr == nil {
		o.werr = cause
	}
	gone := make([]*Stream, 0, len(o.streams))
	for id, s := range o.streams {
		delete(o.streams, id)
		s.x.inMap, s.x.gone = false, true
		s.x.pins++
		gone = append(gone, s)
	}
	o.wcond.Broadcast()
	o.space.Broadcast()
	o.mu.Unlock()
	o.dmu.Lock()
	o.nc.Close() // a writer stuck on a client that does not read returns
	o.dmu.Unlock()
	if o.overQueued.Load() {
		o.c.srv.log.Warn("HTTP/2 client does not read; connection closed", "remote", o.c.clientIP, "queued", h2MaxQueued)
	}
	for _, s := range gone {
		o.goneUnpin(s, cause)
	}
	<-writerDone
	o.wg.Wait()
}

func (o *h2Own) idleTimeout() time.Duration {
	if d := o.c.st.IdleTimeout; d > 0 {
		return d
	}
	return 1<<63 - 1
}

// idleFired ends a connection that carried no stream for the idle timeout.
func (o *h2Own) idleFired() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.streams) == 0 && !o.closing {
		o.goAwayLocked(http2.ErrCodeNo)
		o.closing = true
		o.wcond.Signal()
	}
}

// readSafely runs the read loop and recovers its panic (a bug): without it the panic would
// reach conn.serve, which does not know the connection's writer and streams: no GOAWAY, and
// the writer goroutine of a connection with no stream open left until the idle timeout
// (for ever without one); a panic with o.mu held would also block the streams' handlers.
// The panic is logged with its stack and counted (conn_INTERNAL_ERROR_panic), o.mu is given
// back if the read loop held it (and a stream's body lock before it: lockBody), and the
// connection ends with GOAWAY INTERNAL_ERROR: serve's
// end then cancels every open stream, stops the writer and waits for the handlers, as for
// any other end.
func (o *h2Own) readSafely() {
	defer func() {
		v := recover()
		if v == nil {
			return
		}
		if o.rlBody != nil { // taken after o.mu: given back first
			o.unlockBody()
		}
		if o.rlHeld {
			o.unlockR()
		}
		o.c.srv.log.Error("panic in HTTP/2 connection read loop; connection closed", "remote", o.c.clientIP,
			"panic", fmt.Sprint(v), "stack", string(debug.Stack()))
		o.connError(http2.ErrCodeInternal, h2PanicToken)
	}()
	o.readLoop()
}

// h2PanicToken counts the read loops that ended in a panic
// (sluice_http2_protocol_errors_total).
const h2PanicToken = "conn_INTERNAL_ERROR_panic"

// h2FrameHook, when set, sees each frame header the read loop takes; only tests set it (to
// make the read loop panic: h2panic_test.go). A package variable, because nothing else
// reaches into a connection's read loop from outside; atomic, because other tests'
// connections may be reading meanwhile.
var h2FrameHook atomic.Pointer[func(*h2Own, http2.FrameHeader)]

// h2BuiltHook, when set, runs after the read loop built a new stream's request and before
// it admits the stream; only tests set it (to end the connection just then:
// TestH2GoAwayNamesTakenStreams). Atomic for the same reason as h2FrameHook.
var h2BuiltHook atomic.Pointer[func(*h2Own)]

// lockR and unlockR are o.mu's Lock and Unlock for the read loop (and serve's end, on the
// same goroutine): they note that the read loop holds o.mu, so that readSafely can give it
// back after a panic in between. Other goroutines hold o.mu only for work that does not
// block (their waits release it), so the read loop's is the only hold a panic can leave.
func (o *h2Own) lockR() {
	o.mu.Lock()
	o.rlHeld = true
}

func (o *h2Own) unlockR() {
	o.rlHeld = false
	o.mu.Unlock()
}

// lockBody and unlockBody are a stream's body lock (rmu) for the read loop, which takes it
// with o.mu held (lockR) to hand the stream request bytes or trailers: they note the
// stream, so that readSafely can give rmu back after a panic in between. Left held, it
// would block serve's end (ownGone takes it) and the handler reading the body for ever.
func (o *h2Own) lockBody(s *Stream) {
	s.x.rmu.Lock()
	o.rlBody = s
}

func (o *h2Own) unlockBody() {
	s := o.rlBody
	o.rlBody = nil
	s.x.rmu.Unlock()
}

// readLoop reads and handles the client's frames until the connection ends.
func (o *h2Own) readLoop() {
	var pf [len(h2Preface)]byte
	if d := o.c.st.ReadHeaderTimeout; d > 0 {
		o.setReadDeadline(time.Now().Add(d))
	}
	if _, err := io.ReadFull(o.br, pf[:]); err != nil || string(pf[:]) != h2Preface {
		if err == nil {
			o.connError(http2.ErrCodeProtocol, "conn_PROTOCOL_bad_preface")
		}
		return
	}
	o.setReadDeadline(time.Time{})
	for {
		hb, err := o.br.Peek(9)
		if err != nil {
			return
		}
		fh := http2.FrameHeader{Length: uint32(hb[0])<<16 | uint32(hb[1])<<8 | uint32(hb[2]),
			Type: http2.FrameType(hb[3]), Flags: http2.Flags(hb[4]), StreamID: binary.BigEndian.Uint32(hb[5:9]) & (1<<31 - 1)}
		// A header block is a HEADERS frame and its CONTINUATION frames, nothing between
		// (RFC 9113 §4.3, §6.10).
		if o.blk.id != 0 && (fh.Type != http2.FrameContinuation || fh.StreamID != o.blk.id) ||
			o.blk.id == 0 && fh.Type == http2.FrameContinuation {
			o.connError(http2.ErrCodeProtocol, "conn_PROTOCOL_header_block_interrupted")
			return
		}
		if !o.count(fh) {
			return
		}
		if hook := h2FrameHook.Load(); hook != nil {
			(*hook)(o, fh)
		}
		switch fh.Type {
		case http2.FrameHeaders, http2.FrameContinuation, http2.FrameWindowUpdate:
			// Parsed here: the Framer allocates a frame for each of these.
			if fh.Length > o.maxRead {
				o.connError(http2.ErrCodeFrameSize, "conn_FRAME_SIZE_frame_too_large")
				return
			}
			p, err := o.payload(int(fh.Length))
			if err != nil {
				return
			}
			ok := o.ownFrame(fh, p) && !o.overQueued.Load() && !o.calm
			if 9+int(fh.Length) <= o.br.Size() { // p was a view of the buffer
				o.br.Discard(9 + int(fh.Length))
			}
			if !ok {
				return
			}
			continue
		}
		f, err := o.fr.ReadFrame()
		if err != nil {
			var se http2.StreamError
			var ce http2.ConnectionError
			switch {
			case errors.As(err, &se):
				o.resetStream(se.StreamID, se.Code, "stream_"+se.Code.String()+"_frame")
				if o.calm {
					return
				}
				continue
			case errors.As(err, &ce):
				o.connError(http2.ErrCode(ce), "conn_"+http2.ErrCode(ce).String()+"_frame")
			case err == http2.ErrFrameTooLarge:
				o.connError(http2.ErrCodeFrameSize, "conn_FRAME_SIZE_frame_too_large")
			}
			return
		}
		if !o.handle(f) || o.overQueued.Load() || o.calm {
			return
		}
	}
}

// payload returns the payload of the frame whose header is at the front of the read
// buffer: a view of the buffer when it fits (the caller discards the frame after use),
// else a copy (the frame is then consumed already).
func (o *h2Own) payload(n int) ([]byte, error) {
	if 9+n <= o.br.Size() {
		b, err := o.br.Peek(9 + n)
		if err != nil {
			return nil, err
		}
		return b[9:], nil
	}
	if _, err := o.br.Discard(9); err != nil {
		return nil, err
	}
	if cap(o.big) < n {
		o.big = make([]byte, n)
	}
	b := o.big[:n]
	if _, err := io.ReadFull(o.br, b); err != nil {
		return nil, err
	}
	return b, nil
}

// ownFrame handles a HEADERS, CONTINUATION or WINDOW_UPDATE frame with the Framer's
// checks (RFC 9113 §6.2, §6.9, §6.10); false: the connection ends.
func (o *h2Own) ownFrame(fh http2.FrameHeader, p []byte) bool {
	id := fh.StreamID
	switch fh.Type {
	case http2.FrameWindowUpdate:
		if len(p) != 4 {
			return o.connError(http2.ErrCodeFrameSize, "conn_FRAME_SIZE_window_update_length")
		}
		inc := binary.BigEndian.Uint32(p) & (1<<31 - 1)
		if inc == 0 {
			if id == 0 {
				return o.connError(http2.ErrCodeProtocol, "conn_PROTOCOL_window_update_zero")
			}
			o.resetStream(id, http2.ErrCodeProtocol, "stream_PROTOCOL_window_update_zero")
			return true
		}
		return o.onWindowUpdate(id, int64(inc))
	case http2.FrameContinuation:
		if !o.decode(p) {
			return false
		}
		if fh.Flags&flagEndHeaders != 0 {
			return o.endBlock()
		}
		return true
	}
	if id == 0 {
		return o.connError(http2.ErrCodeProtocol, "conn_PROTOCOL_headers_stream_0")
	}
	pad := 0
	if fh.Flags&flagPadded != 0 {
		if len(p) < 1 {
			return o.connError(http2.ErrCodeFrameSize, "conn_FRAME_SIZE_headers_short")
		}
		pad, p = int(p[0]), p[1:]
	}
	dep := uint32(0)
	prio := fh.Flags&flagPriority != 0
	if prio {
		if len(p) < 5 {
			return o.connError(http2.ErrCodeFrameSize, "conn_FRAME_SIZE_headers_short")
		}
		dep, p = binary.BigEndian.Uint32(p)&(1<<31-1), p[5:]
	}
	if pad > len(p) {
		return o.connError(http2.ErrCodeProtocol, "conn_PROTOCOL_headers_pad_length")
	}
	return o.onHeaders(id, fh.Flags&flagEndStream != 0, fh.Flags&flagEndHeaders != 0, prio && dep == id, p[:len(p)-pad])
}

// count checks one frame against the per-second and per-block limits; false: the
// connection ended with ENHANCE_YOUR_CALM.
func (o *h2Own) count(fh http2.FrameHeader) bool {
	if now := o.src.at; now.Sub(o.winStart) >= time.Second {
		o.winStart, o.resets, o.control, o.empty = now, 0, 0, 0
	}
	empty := false
	switch fh.Type {
	case http2.FrameData:
		empty = fh.Length == 0 && fh.Flags&flagEndStream == 0
	case http2.FrameHeaders:
		o.conts = 0
		empty = fh.Length == 0 && fh.Flags&flagEndHeaders == 0
	case http2.FrameContinuation:
		if o.conts++; o.conts > o.lim.continuations {
			return o.limitHit(LimitContinuations, o.conts)
		}
		empty = fh.Length == 0 && fh.Flags&flagEndHeaders == 0
	case http2.FrameRSTStream:
		if o.resets++; o.resets > o.lim.resets {
			return o.limitHit(LimitResets, o.resets)
		}
	case http2.FramePing, http2.FrameSettings:
		// A PING after stream frames the gateway sent is free: a client measuring the
		// connection as data arrives sends one per batch it reads (grpc-go's BDP estimator:
		// one per unary call, hundreds a second on one connection under load, which cut
		// every such connection at the default 100 per second, failing calls in flight).
		// grpc-go's own server forgives those the same way (its ping strikes restart when it
		// sends data or headers). A flood gets one free PING per batch of the gateway's own
		// output: a handler's flush or a stream's end, which its requests and the handlers
		// bound, not the frames a tiny flow-control window forces out one at a time
		// (writeOwn); PINGs with nothing sent between them count.
		if fh.Type == http2.FramePing && fh.Flags&flagAck == 0 && o.answered.Swap(false) {
			break
		}
		if fh.Flags&flagAck == 0 {
			if o.control++; o.control > o.lim.control {
				return o.limitHit(LimitControlFrames, o.control)
			}
		}
	}
	if empty {
		if o.empty++; o.empty > o.lim.empty {
			return o.limitHit(LimitEmptyFrames, o.empty)
		}
	}
	return true
}

func (o *h2Own) limitHit(limit string, n int) bool {
	o.h.limit(limit, n, true)
	return o.fail(http2.ErrCodeEnhanceYourCalm, limit)
}

// handle handles one frame; false: the connection ends.
func (o *h2Own) handle(f http2.Frame) bool {
	switch f := f.(type) {
	case *http2.DataFrame:
		return o.onData(f)
	case *http2.RSTStreamFrame:
		id := f.StreamID
		if id > o.maxID || o.blk.id == id {
			return o.connError(http2.ErrCodeProtocol, "conn_PROTOCOL_reset_idle_stream")
		}
		o.lockR()
		s := o.dropLocked(id)
		o.unlockR()
		if s != nil {
			o.goneUnpin(s, errStreamCanceled)
		}
	case *http2.SettingsFrame:
		return o.onSettings(f)
	case *http2.PingFrame:
		if !f.IsAck() {
			o.lockR()
			o.out = appendFrame(o.out, framePing, flagAck, 0, f.Data[:])
			o.checkQueuedLocked()
			o.wcond.Signal()
			o.unlockR()
		}
	case *http2.PriorityFrame:
		if f.StreamDep == f.StreamID {
			o.resetStream(f.StreamID, http2.ErrCodeProtocol, "stream_PROTOCOL_priority_self")
		}
	case *http2.GoAwayFrame:
		// The client leaves: its streams in flight still finish.
	case *http2.PushPromiseFrame:
		return o.connError(http2.ErrCodeProtocol, "conn_PROTOCOL_push_promise")
	}
	return true
}

func (o *h2Own) onSettings(f *http2.SettingsFrame) bool {
	if f.IsAck() {
		return true
	}
	o.lockR()
	initial, highest := o.initSend, int64(-1) // SETTINGS_INITIAL_WINDOW_SIZE: the last named, the highest
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingInitialWindowSize:
			initial, highest = int64(s.Val), max(highest, int64(s.Val))
		case http2.SettingMaxFrameSize:
			o.maxFrame = int(s.Val)
		}
		return nil
	})
	if err == nil && highest >= 0 {
		err = o.setInitialWindowLocked(initial, highest)
	}
	if err == nil {
		o.out = appendFrame(o.out, frameSettings, flagAck, 0, nil)
		o.checkQueuedLocked()
		o.wcond.Signal()
		o.space.Broadcast()
	}
	o.unlockR()
	if err != nil {
		var ce http2.ConnectionError
		code := http2.ErrCodeProtocol
		if errors.As(err, &ce) {
			code = http2.ErrCode(ce)
		}
		return o.connError(code, "conn_"+code.String()+"_settings")
	}
	return true
}

// setInitialWindowLocked applies the client's new SETTINGS_INITIAL_WINDOW_SIZE to the open
// streams' send windows (RFC 9113 §6.9.2), once per SETTINGS frame: applied per setting, a
// frame naming it 2,730 times (16 KiB) made as many passes over up to
// max_concurrent_streams streams, 2 ms of CPU a frame at 100 streams, and 100 such frames a
// second pass the control-frame limit (TestH2OwnSettingsWindowOnce). The settings are still
// processed in order: highest is the highest value the frame named, the one an in-order
// application would have found over the maximum window first. o.mu is held.
func (o *h2Own) setInitialWindowLocked(initial, highest int64) error {
	for _, st := range o.streams {
		if st.x.sendWin+highest-o.initSend > maxWindow {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
	}
	if delta := initial - o.initSend; delta != 0 {
		for _, st := range o.streams {
			st.x.sendWin += delta
		}
	}
	o.initSend = initial
	return nil
}

func (o *h2Own) onWindowUpdate(id uint32, inc int64) bool {
	o.lockR()
	if id == 0 {
		o.connSend += inc
		over := o.connSend > maxWindow
		o.space.Broadcast()
		o.unlockR()
		if over {
			return o.connError(http2.ErrCodeFlowControl, "conn_FLOW_CONTROL_window_overflow")
		}
		return true
	}
	s := o.streams[id]
	if s == nil {
		o.unlockR()
		if id > o.maxID {
			return o.connError(http2.ErrCodeProtocol, "conn_PROTOCOL_window_update_idle")
		}
		return true
	}
	s.x.sendWin += inc
	over := s.x.sendWin > maxWindow
	o.space.Broadcast()
	o.unlockR()
	if over {
		o.resetStream(id, http2.ErrCodeFlowControl, "stream_FLOW_CONTROL_window_overflow")
	}
	return true
}

func (o *h2Own) onData(f *http2.DataFrame) bool {
	id, n := f.StreamID, int64(f.Length)
	data := f.Data()
	o.lockR()
	o.recvUsed += n
	if o.recvUsed > o.connWin {
		o.unlockR()
		return o.connError(http2.ErrCodeFlowControl, "conn_FLOW_CONTROL_conn_window")
	}
	s := o.streams[id]
	if s == nil || s.x.remoteClosed {
		o.giveBackLocked(n)
		o.unlockR()
		if id > o.maxID || id == o.blk.id {
			return o.connError(http2.ErrCodeProtocol, "conn_PROTOCOL_data_idle_stream")
		}
		o.resetStream(id, http2.ErrCodeStreamClosed, "stream_STREAM_CLOSED_data_closed_stream")
		return true
	}
	s.x.recvUsed += n
	if s.x.recvUsed+s.x.recvPend > o.streamWin { // read bytes not yet given back are still used
		o.unlockR()
		o.resetStream(id, http2.ErrCodeFlowControl, "stream_FLOW_CONTROL_stream_window")
		return true
	}
	s.x.recvTotal += int64(len(data))
	bad := s.x.declaredIn >= 0 && (s.x.recvTotal > s.x.declaredIn || f.StreamEnded() && s.x.recvTotal != s.x.declaredIn)
	if !bad {
		o.lockBody(s)
		if s.x.boff > 0 && len(s.x.body)+len(data) > cap(s.x.body) {
			// The bytes read so far leave the front, so that the buffer stays within the
			// stream window even when the handler never catches up.
			k := copy(s.x.body, s.x.body[s.x.boff:])
			s.x.body, s.x.boff = s.x.body[:k], 0
		}
		s.x.body = append(s.x.body, data...)
		if f.StreamEnded() {
			s.x.remoteClosed = true
			s.x.rerr = io.EOF
		}
		o.unlockBody()
		s.wakeBody()
	}
	if pad := n - int64(len(data)); pad > 0 {
		// Padding counts against both windows (RFC 9113 §6.1): given back to both at once.
		o.giveBackStreamLocked(&s.x, pad)
	}
	o.unlockR()
	if bad {
		o.resetStream(id, http2.ErrCodeProtocol, "stream_PROTOCOL_content_length_mismatch")
	}
	return true
}

// checkQueuedLocked ends a connection whose client does not read the frames its own
// frames make the gateway send (PING and SETTINGS acknowledgements, resets): past
// h2MaxQueued unsent bytes the read loop stops and the connection closes.
func (o *h2Own) checkQueuedLocked() {
	if len(o.out) > h2MaxQueued && !o.overQueued.Load() {
		o.overQueued.Store(true)
		o.werr = errQueueFull
		o.wcond.Broadcast()
		o.space.Broadcast()
	}
}

var errQueueFull = errors.New("HTTP/2 client does not read: output queue full")

// giveBackStreamLocked gives n bytes received on a stream back to the stream's and the
// connection's windows (batched); o.mu is held and the stream is in o.streams.
func (o *h2Own) giveBackStreamLocked(x *ownStream, n int64) {
	x.recvUsed -= n
	x.recvPend += n
	if x.recvPend >= o.streamWin/4 && !x.remoteClosed && o.werr == nil {
		o.out = appendWindowUpdate(o.out, x.id, uint32(x.recvPend))
		x.recvPend = 0
		o.wcond.Signal()
	}
	o.giveBackLocked(n)
}

// giveBackLocked gives n received connection bytes back to the client's window (batched).
func (o *h2Own) giveBackLocked(n int64) {
	o.recvPend += n
	if o.recvPend >= o.connWin/4 && o.werr == nil {
		o.out = appendWindowUpdate(o.out, 0, uint32(o.recvPend))
		o.recvUsed -= o.recvPend
		o.recvPend = 0
		o.wcond.Signal()
	}
}

func (o *h2Own) onHeaders(id uint32, endStream, endHeaders, selfDep bool, frag []byte) bool {
	if id%2 == 0 {
		return o.connError(http2.ErrCodeProtocol, "conn_PROTOCOL_even_stream_id")
	}
	b := &o.blk
	*b = h2Block{id: id, endStream: endStream, clen: -1, fields: b.fields[:0], at: o.src.at}
	o.lockR()
	s := o.streams[id]
	open, halfClosed := s != nil, s != nil && s.x.remoteClosed
	wasReset := !open && id <= o.maxID && o.wasResetLocked(id)
	o.unlockR()
	switch {
	case wasReset:
		// Sent before the client read our RST_STREAM (an answer before the request's end,
		// REFUSED_STREAM): a stream error as for its DATA, not the connection's end, which
		// would cut every stream in flight on it (RFC 9113 §5.1: such frames are ignored).
		b.err, b.errWhy = http2.ErrCodeStreamClosed, "stream_STREAM_CLOSED_headers_reset_stream"
	case open:
		b.trailers = true
		o.trailer.Reset()
		if halfClosed {
			b.err, b.errWhy = http2.ErrCodeStreamClosed, "stream_STREAM_CLOSED_headers_half_closed"
		} else if !b.endStream {
			b.err, b.errWhy = http2.ErrCodeProtocol, "stream_PROTOCOL_trailers_without_end_stream"
		}
	case id <= o.maxID:
		// A stream that was open (among the last few): STREAM_CLOSED; an id never used
		// below the highest: PROTOCOL_ERROR (RFC 9113 §5.1, §5.1.1).
		for _, r := range o.recent {
			if r == id {
				return o.connError(http2.ErrCodeStreamClosed, "conn_STREAM_CLOSED_headers_closed_stream")
			}
		}
		return o.connError(http2.ErrCodeProtocol, "conn_PROTOCOL_stream_id_went_down")
	default:
		o.maxID = id
		o.recent[o.nrecent%uint32(len(o.recent))] = id
		o.nrecent++
		b.s = streamPool.Get().(*Stream)
		b.s.buf = b.s.buf[:0]
	}
	if selfDep {
		b.err, b.errWhy = http2.ErrCodeProtocol, "stream_PROTOCOL_priority_self"
	}
	if !o.decode(frag) {
		return false
	}
	if endHeaders {
		return o.endBlock()
	}
	return true
}

// decode passes a header block fragment to the decoder (which calls field).
func (o *h2Own) decode(p []byte) bool {
	if _, err := o.dec.Write(p); err != nil {
		return o.connError(http2.ErrCodeCompression, "conn_COMPRESSION_hpack")
	}
	return true
}

// field takes one decoded field of the block in progress (RFC 9113 §8.2, §8.3).
func (o *h2Own) field(f hpack.HeaderField) {
	b := &o.blk
	b.size += len(f.Name) + len(f.Value) + 32
	if b.err != 0 || b.big {
		return
	}
	if b.size > o.maxList || b.trailers && b.size > h1.DefaultMaxTrailerBytes {
		b.big = true // a trailer section over its bound fails the body (endTrailers)
		return
	}
	bad := func(why string) { b.err, b.errWhy = http2.ErrCodeProtocol, why }
	if !validFieldName(f.Name) {
		bad("stream_PROTOCOL_bad_field_name")
		return
	}
	if !httpguts.ValidHeaderFieldValue(f.Value) {
		bad("stream_PROTOCOL_bad_field_value")
		return
	}
	if f.Name[0] == ':' {
		i := -1
		switch f.Name {
		case ":method":
			i = psMethod
		case ":scheme":
			i = psScheme
		case ":path":
			i = psPath
		case ":authority":
			i = psAuthority
		}
		switch {
		case i < 0 || b.trailers || b.regular:
			bad("stream_PROTOCOL_bad_pseudo_field")
		case b.has&(1<<i) != 0:
			bad("stream_PROTOCOL_duplicate_pseudo_field")
		default:
			b.has |= 1 << i
			if b.s != nil {
				b.pseudo[i] = b.s.add(f.Value)
			}
		}
		return
	}
	b.regular = true
	switch f.Name {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
		bad("stream_PROTOCOL_connection_specific_field")
		return
	case "te":
		if f.Value != "trailers" {
			bad("stream_PROTOCOL_te_not_trailers")
			return
		}
	case "content-length":
		if !b.trailers {
			n, err := strconv.ParseInt(f.Value, 10, 64)
			if err != nil || n < 0 || f.Value[0] == '+' || b.clen >= 0 && b.clen != n {
				bad("stream_PROTOCOL_bad_content_length")
				return
			}
			b.clen = n
		}
	case "host":
		if b.s != nil && !b.hasHost {
			b.host, b.hasHost = b.s.add(f.Value), true
		}
		return
	}
	if b.trailers {
		o.trailer.Add(f.Name, f.Value) // copies
		return
	}
	if b.s != nil {
		b.fields = append(b.fields, spanField{b.s.add(f.Name), b.s.add(f.Value)})
	}
}

// validFieldName: a token of lower-case characters, or a pseudo field's name.
func validFieldName(n string) bool {
	if n == "" {
		return false
	}
	if n[0] == ':' {
		n = n[1:]
		if n == "" {
			return false
		}
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c >= 'A' && c <= 'Z' || !httpguts.IsTokenRune(rune(c)) {
			return false
		}
	}
	return true
}

// add appends v to the stream's buffer and returns where it is.
func (s *Stream) add(v string) span {
	a := len(s.buf)
	s.buf = append(s.buf, v...)
	return span{a, len(s.buf)}
}

// endBlock handles a complete header block.
func (o *h2Own) endBlock() bool {
	b := &o.blk
	if err := o.dec.Close(); err != nil {
		return o.connError(http2.ErrCodeCompression, "conn_COMPRESSION_hpack")
	}
	id, s := b.id, b.s
	b.s, b.id = nil, 0
	if s != nil && b.err == 0 && b.has&(1<<psMethod|1<<psScheme|1<<psPath) != 1<<psMethod|1<<psScheme|1<<psPath &&
		!(b.has&(1<<psMethod) != 0 && string(s.buf[b.pseudo[psMethod].a:b.pseudo[psMethod].b]) == "CONNECT") {
		b.err, b.errWhy = http2.ErrCodeProtocol, "stream_PROTOCOL_missing_pseudo_field"
	}
	if s != nil && b.err == 0 && b.has&(1<<psPath) != 0 && b.pseudo[psPath].a == b.pseudo[psPath].b {
		b.err, b.errWhy = http2.ErrCodeProtocol, "stream_PROTOCOL_empty_path"
	}
	if s != nil && b.err == 0 && b.endStream && b.clen > 0 {
		b.err, b.errWhy = http2.ErrCodeProtocol, "stream_PROTOCOL_content_length_mismatch"
	}
	if b.err != 0 {
		if s != nil {
			s.buf = s.buf[:0]
			streamPool.Put(s)
		}
		o.resetStream(id, b.err, b.errWhy)
		return true
	}
	if b.trailers {
		o.endTrailers(id, b.big)
		return true
	}
	// The request is built first; the stream is then admitted and taken in one hold of
	// o.mu, so that a GOAWAY (the idle timer, a drain: both under o.mu) either names it
	// and it is served, or does not and it is not (RFC 9113 §6.8). A refused stream goes
	// back to the pool through release, as a served one does.
	o.fillOwn(s, id)
	o.checkClient(s)
	if hook := h2BuiltHook.Load(); hook != nil {
		(*hook)(o)
	}
	o.lockR()
	switch {
	case o.final || o.closing:
		o.unlockR()
		s.release()
		return true // after the last GOAWAY: ignored (RFC 9113 §6.8)
	case uint32(len(o.streams)) >= o.st.MaxConcurrentStreams:
		o.unlockR()
		s.release()
		o.resetStream(id, http2.ErrCodeRefusedStream, "stream_REFUSED_STREAM_over_max_streams")
		return true
	}
	o.taken = id
	s.x.inMap = true
	s.x.sendWin = o.initSend
	o.streams[id] = s
	if len(o.streams) == 1 {
		o.idle.Stop()
	}
	o.wg.Add(1)
	o.unlockR()
	dispatchStream(s)
	return true
}

// endTrailers hands a request's trailer fields to its stream: the body ends. A trailer
// section over h1.DefaultMaxTrailerBytes (big: the fields past it were not kept) fails the
// body instead, as an HTTP/1.1 chunked body's does (400 bad_request): forwarding the fields
// decoded before the bound would drop the others without a word.
func (o *h2Own) endTrailers(id uint32, big bool) {
	o.lockR()
	s := o.streams[id]
	bad := false
	if s != nil && !s.x.remoteClosed {
		bad = s.x.declaredIn >= 0 && s.x.recvTotal != s.x.declaredIn
		if !bad {
			o.lockBody(s)
			for _, f := range o.trailer.Fields {
				s.x.reqTrailer.Add(string(f.Name), string(f.Value))
			}
			s.x.remoteClosed = true
			s.x.rerr = io.EOF
			if big {
				s.x.reqTrailer.Reset()
				s.x.rerr = errTrailerTooLarge
			}
			o.unlockBody()
			s.wakeBody()
		}
	}
	o.unlockR()
	if bad {
		o.resetStream(id, http2.ErrCodeProtocol, "stream_PROTOCOL_content_length_mismatch")
	}
}

// errTrailerTooLarge fails the body of a request whose trailer section is over
// h1.DefaultMaxTrailerBytes (counted as RFC 9113 §6.5.2 counts a header list).
var errTrailerTooLarge = &h1.Error{Status: 400, Reason: "trailer section too large"}

// fillOwn builds the stream's request from the decoded block.
func (o *h2Own) fillOwn(s *Stream, id uint32) {
	b := &o.blk
	s.h = o.h
	s.x.o, s.x.id = o, id
	s.x.declaredIn = b.clen
	s.x.remoteClosed = b.endStream
	s.x.rerr = nil
	if b.endStream {
		s.x.rerr = io.EOF
	}
	s.x.listSize = b.size
	s.x.big = b.big
	// RFC 9113 §8.2.3: cookie fields become one for HTTP/1.1, joined by "; ". Done
	// first: it appends to s.buf, which Req's slices point into.
	cookies, joined := 0, span{}
	for _, f := range b.fields {
		if string(s.buf[f.n.a:f.n.b]) == "cookie" {
			cookies++
		}
	}
	if cookies > 1 {
		joined.a = len(s.buf)
		for _, f := range b.fields {
			if string(s.buf[f.n.a:f.n.b]) == "cookie" {
				if len(s.buf) > joined.a {
					s.buf = append(s.buf, "; "...)
				}
				s.buf = append(s.buf, s.buf[f.v.a:f.v.b]...)
			}
		}
		joined.b = len(s.buf)
	}
	at := func(sp span) []byte { return s.buf[sp.a:sp.b:sp.b] }
	req := &s.Req
	req.Method, req.Target = at(b.pseudo[psMethod]), at(b.pseudo[psPath])
	switch {
	case b.has&(1<<psAuthority) != 0:
		req.Host = at(b.pseudo[psAuthority])
	case b.hasHost:
		req.Host = at(b.host)
	}
	req.Path, req.Query = req.Target, nil
	if i := bytes.IndexByte(req.Target, '?'); i >= 0 {
		req.Path, req.Query = req.Target[:i], req.Target[i+1:]
	}
	req.Minor = 1
	seenCookie := false
	for _, f := range b.fields {
		name, v := at(f.n), f.v
		switch string(name) {
		case "cookie":
			if cookies > 1 {
				if seenCookie {
					continue
				}
				seenCookie, v = true, joined
			}
		case "expect":
			s.x.expect100 = h1.EqualFold(at(v), "100-continue")
		}
		req.Header.Fields = append(req.Header.Fields, h1.Field{Name: name, Value: at(v)})
	}
	switch {
	case b.clen >= 0:
		req.ContentLength = b.clen
	case !b.endStream:
		req.ContentLength, req.Chunked = -1, true
	}
	s.initOwn() // here, before any other goroutine can see the stream
}

// resetStream sends RST_STREAM for id with code and ends the stream if it is open. The
// read loop only: a stream it ends counts against the resets per second as the client's
// RST_STREAM does (its handler may still run, off the open streams' count: a client that
// makes the server reset its streams is a rapid reset too); past the limit the connection
// ends (o.calm).
func (o *h2Own) resetStream(id uint32, code http2.ErrCode, token string) {
	if token != "" {
		o.h.countError(token)
	}
	o.lockR()
	s := o.dropLocked(id)
	if o.werr == nil {
		o.noteResetLocked(id)
		o.out = appendRST(o.out, id, code)
		o.checkQueuedLocked()
		o.wcond.Signal()
	}
	o.unlockR()
	if s != nil {
		o.goneUnpin(s, errClientGone)
		if o.resets++; o.resets > o.lim.resets && !o.calm {
			o.calm = true
			o.limitHit(LimitResets, o.resets)
		}
	}
}

// noteResetLocked notes that the server sends RST_STREAM for stream id; o.mu is held.
func (o *h2Own) noteResetLocked(id uint32) {
	o.resetSent[o.nresetSent%uint32(len(o.resetSent))] = id
	o.nresetSent++
}

// wasResetLocked reports whether the server sent RST_STREAM for stream id lately (among
// the last len(resetSent)): the client may have sent frames on it before it read the
// reset, which RFC 9113 §5.1 says to ignore ("An endpoint MAY choose to limit the period
// over which it ignores frames": here, by the count of resets since). o.mu is held.
func (o *h2Own) wasResetLocked(id uint32) bool {
	for _, r := range o.resetSent {
		if r == id {
			return true
		}
	}
	return false
}

// goneUnpin ends a stream taken off the connection by the read loop (ownGone, with cause),
// then lets it go back to its pool if its handler is done: a pinned Stream is not reused.
func (o *h2Own) goneUnpin(s *Stream, cause error) {
	s.ownGone(cause)
	o.lockR()
	s.x.pins--
	rel := s.x.pins == 0 && s.x.served
	o.unlockR()
	if rel {
		s.release()
	}
}

// dropLocked removes stream id, if open, from the open streams and marks it gone, pinned
// until goneUnpin (the handler may still run); it returns the stream or nil.
func (o *h2Own) dropLocked(id uint32) *Stream {
	s := o.streams[id]
	if s != nil {
		o.removeLocked(s)
		s.x.gone = true
		s.x.pins++
	}
	return s
}

// removeLocked takes an open stream off the connection: its unread body goes back to the
// connection window. o.mu is held.
func (o *h2Own) removeLocked(s *Stream) {
	if !s.x.inMap {
		return
	}
	s.x.inMap = false
	delete(o.streams, s.x.id)
	if s.x.recvUsed > 0 {
		o.giveBackLocked(s.x.recvUsed)
		s.x.recvUsed = 0
	}
	o.space.Broadcast()
	if len(o.streams) == 0 {
		if o.final {
			o.closing = true
			o.wcond.Signal()
		} else {
			o.idle.Reset(o.idleTimeout())
		}
	}
}

// connError ends the connection with a GOAWAY carrying code; it returns false.
func (o *h2Own) connError(code http2.ErrCode, token string) bool {
	if token != "" {
		o.h.countError(token)
	}
	return o.fail(code, token)
}

// fail ends the connection with a GOAWAY carrying code, for why (a protocol error's token,
// a limit's name), and notes it as the cause its streams in flight end with: the access log
// says the gateway cut them, not that the client left. It returns false.
func (o *h2Own) fail(code http2.ErrCode, why string) bool {
	o.lockR()
	if o.cut == nil && !o.closing && o.werr == nil {
		o.cut = reason.New(499, reason.ClientBodyError, "", fmt.Errorf("the gateway closed the client's connection with GOAWAY %s (%s)", code, why))
	}
	o.goAwayLocked(code)
	o.closing = true
	o.wcond.Signal()
	o.unlockR()
	return false
}

// goAwayLocked appends a GOAWAY naming the last stream taken (o.taken); o.mu is held.
func (o *h2Own) goAwayLocked(code http2.ErrCode) {
	if o.closing || o.werr != nil {
		return
	}
	o.final = true
	var p [8]byte
	binary.BigEndian.PutUint32(p[:4], o.taken)
	binary.BigEndian.PutUint32(p[4:], uint32(code))
	o.out = appendFrame(o.out, frameGoAway, 0, 0, p[:])
	o.wcond.Signal()
	go o.h.goAway(o.taken, code) // logs and metrics, off the lock
}

// drain is the two-step graceful drain (see h2Conn.drain).
func (o *h2Own) drain() {
	o.mu.Lock()
	step1 := !o.closing && !o.final && o.werr == nil
	if step1 {
		var p [8]byte
		binary.BigEndian.PutUint32(p[:4], 1<<31-1)
		o.out = appendFrame(o.out, frameGoAway, 0, 0, p[:])
		o.sent1 = true
		o.wcond.Signal()
	}
	o.mu.Unlock()
	if step1 {
		o.h.goAway(1<<31-1, http2.ErrCodeNo)
		time.Sleep(o.st.DrainWait)
	}
	o.mu.Lock()
	o.goAwayLocked(http2.ErrCodeNo)
	if len(o.streams) == 0 {
		o.closing = true
		o.wcond.Signal()
	}
	o.mu.Unlock()
}

// writeLoop sends the connection's output: what accumulated while the previous write
// ran goes out in one write.
func (o *h2Own) writeLoop(done chan struct{}) {
	defer close(done)
	o.mu.Lock()
	for {
		for (len(o.out) == 0 && !o.closing || o.writing) && o.werr == nil {
			o.wcond.Wait()
		}
		if o.werr != nil || len(o.out) == 0 {
			break
		}
		o.writing = true
		if !o.closing {
			// Let the streams that are about to end add their frames first: one
			// write then carries the responses of many.
			o.mu.Unlock()
			runtime.Gosched()
			o.mu.Lock()
		}
		buf := o.out
		o.out = o.spare[:0]
		o.mu.Unlock()
		o.armWrite()
		_, err := o.nc.Write(buf)
		o.mu.Lock()
		if cap(buf) <= 4*h2MaxOut {
			o.spare = buf[:0]
		} else {
			o.spare = nil
		}
		o.writing = false
		if err != nil && o.werr == nil {
			o.werr = err
		}
		o.space.Broadcast()
	}
	failed := o.werr != nil
	if o.werr == nil {
		o.werr = errConnClosed
	}
	o.space.Broadcast()
	o.mu.Unlock()
	if failed {
		o.dmu.Lock()
		o.nc.Close() // the read loop ends
		o.dmu.Unlock()
		return
	}
	o.shutWrite()
}

// shutWrite closes the sending side after the last GOAWAY went out. What the client still
// sends is read and dropped (the read loop goes on) for h2Linger, so that the close does not
// reset the connection before the client read the GOAWAY; that read deadline stands
// (lingerSet).
func (o *h2Own) shutWrite() {
	o.dmu.Lock()
	if cw, ok := o.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
	o.nc.SetReadDeadline(time.Now().Add(h2Linger))
	o.lingerSet = true
	o.dmu.Unlock()
}

// armWrite bounds the next write by write_timeout. A deadline is moved only when less than
// half the timeout is left, so a write gets between half and all of write_timeout to make
// progress, and most writes change no deadline.
func (o *h2Own) armWrite() {
	if o.wto <= 0 {
		return
	}
	now := time.Now()
	if o.wdl.Sub(now) >= o.wto/2 {
		return
	}
	o.wdl = now.Add(o.wto)
	o.dmu.Lock()
	o.nc.SetWriteDeadline(o.wdl)
	o.dmu.Unlock()
}

// setReadDeadline sets the read deadline to t, unless the writer set the linger's after the
// last GOAWAY (lingerSet): that one stands. serve sets its longer bound on the linger after
// it saw the writer not yet done, and the writer may finish in between.
func (o *h2Own) setReadDeadline(t time.Time) {
	o.dmu.Lock()
	if !o.lingerSet {
		o.nc.SetReadDeadline(t)
	}
	o.dmu.Unlock()
}

// stampReader notes when its last read returned bytes: the read loop's clock. The
// per-second limits and each stream's start time read it instead of the clock, once per
// read instead of once per frame and per stream (two clock reads per request at 32
// streams per connection, each ~0.4% of the gateway's CPU under h2load).
type stampReader struct {
	r  io.Reader
	at time.Time
}

func (s *stampReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if n > 0 {
		s.at = time.Now()
	}
	return n, err
}

// Frame encoding.

func appendFrame(b []byte, typ, flags byte, id uint32, payload []byte) []byte {
	n := len(payload)
	b = append(b, byte(n>>16), byte(n>>8), byte(n), typ, flags, byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
	return append(b, payload...)
}

func appendWindowUpdate(b []byte, id, inc uint32) []byte {
	return append(b, 0, 0, 4, frameWindowUpdate, 0, byte(id>>24), byte(id>>16), byte(id>>8), byte(id),
		byte(inc>>24), byte(inc>>16), byte(inc>>8), byte(inc))
}

func appendRST(b []byte, id uint32, code http2.ErrCode) []byte {
	return append(b, 0, 0, 4, frameRSTStream, 0, byte(id>>24), byte(id>>16), byte(id>>8), byte(id),
		byte(code>>24), byte(code>>16), byte(code>>8), byte(code))
}

// serveOwnStream serves one stream of the own codec and releases it.
func serveOwnStream(s *Stream) {
	o := s.x.o
	defer o.wg.Done()
	defer func() {
		if v := recover(); v != nil {
			// A bug: logged, the stream reset, the Stream left to the garbage collector.
			o.c.srv.log.Error("panic serving HTTP/2 stream", "remote", o.c.clientIP, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			s.aborted = true
			s.endOwn(true)
		}
	}()
	if s.admit() {
		s.h.sh.ServeH2(s)
	}
	s.endOwn(s.end())
	o.mu.Lock()
	s.x.served = true
	rel := s.x.pins == 0
	o.mu.Unlock()
	if rel {
		s.release()
	}
}
