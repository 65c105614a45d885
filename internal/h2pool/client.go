package h2pool

// Sluice's own HTTP/2 client connection (issue #16), in place of x/net's http2.ClientConn.
//
// One read loop per connection (readLoop) reads every frame the backend sends, through x/net's
// Framer (frame limits, padding, CONTINUATION, HPACK decoding into a MetaHeadersFrame). No
// goroutine runs per request: the caller's goroutine writes the request's HEADERS and, when
// the body is held in memory and fits the peer's frame size and windows, its DATA with
// END_STREAM in the same write (one syscall for a gRPC unary call); the response head is
// handed to it by the read loop, and the response body is read from a buffer the read loop
// fills. Only a request body that streams from the client (gRPC client and bidi streaming, an
// upload larger than the held prefix) gets a goroutine of its own (writeBody), which ends
// with the body.
//
// Writes go out under wmu, each frame or group of frames in one Write on the socket; HPACK
// encoding happens under it too (the encoder's dynamic table must see the blocks in the
// order they are sent). State shared with the read loop (streams, windows, SETTINGS) is
// under mu. The facts the pool reads are had directly: State (Closed, Closing after a
// GOAWAY, the peer's MAX_CONCURRENT_STREAMS once its SETTINGS were applied), settled
// (closed when they were), ReserveNewRequest, Ping, Close, and onDead when the connection
// stops taking streams. A stream the backend provably did not process (above a GOAWAY's
// last-stream-id, REFUSED_STREAM, or never written because the connection could not take
// it) fails with ErrUnprocessed.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// Frame types written by the client (RFC 9113 §6).
const (
	ftData         = 0x0
	ftHeaders      = 0x1
	ftRSTStream    = 0x3
	ftSettings     = 0x4
	ftPing         = 0x6
	ftGoAway       = 0x7
	ftWindowUpdate = 0x8
	ftContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
)

// What the client advertises and assumes (the values x/net's Transport used).
const (
	streamWindow      = 4 << 20  // SETTINGS_INITIAL_WINDOW_SIZE sent
	connWindow        = 1 << 30  // the connection window, raised from 65535 at the start
	maxHeaderListSize = 10 << 20 // SETTINGS_MAX_HEADER_LIST_SIZE sent, and the read limit
	defaultMaxStreams = 1000     // the peer's limit when its SETTINGS did not name one
	initialMaxStreams = 100      // the peer's limit assumed before its SETTINGS came
	heldBodyMax       = 64 << 10 // a held body larger than this streams from writeBody
	maxReadFrame      = 1 << 20  // SETTINGS_MAX_FRAME_SIZE sent, and the largest frame read (as x/net's Transport)
)

// errClientConnClosed fails the streams of a connection closed by the pool.
var errClientConnClosed = errors.New("http2: client connection closed")

// errConnLost fails the streams of a connection whose read side ended.
var errConnLost = errors.New("http2: client connection lost")

// errFromPeer is the cause of a StreamError the backend sent (RST_STREAM).
var errFromPeer = errors.New("received from peer")

// connState is what the pool reads of a connection (as x/net's ClientConnState).
type connState struct {
	Closed, Closing      bool
	MaxConcurrentStreams uint32 // 0 until the peer's SETTINGS were applied
}

// clientConn is one HTTP/2 client connection.
type clientConn struct {
	nc     net.Conn
	fr     *http2.Framer // read loop only
	onDead func()        // called once, when the connection stops taking new streams

	settled  chan struct{} // closed when the peer's first SETTINGS were applied (or the read side ended)
	readDone chan struct{}

	wmu  wlock // the write side: the order of frames, henc, hbuf, wbuf (clientwlock.go)
	henc *hpack.Encoder
	hbuf bytes.Buffer
	wbuf []byte
	werr error

	mu           sync.Mutex
	cond         sync.Cond // body writers waiting for send window
	streams      map[uint32]*clientStream
	nextID       uint32
	reserved     int
	seenSettings bool
	maxStreams   uint32
	// limit is the peer's MAX_CONCURRENT_STREAMS as its latest SETTINGS set it (or
	// defaultMaxStreams when its first named none); -1 before its first SETTINGS. Read by
	// the pool without cc.mu (burst.go streamLimit).
	limit          atomic.Int64
	peerMaxFrame   uint32
	peerInitWindow int64
	peerMaxList    uint32 // 0: no limit
	sendWindow     int64  // the connection's send window
	recvWindow     int64  // what the peer may still send on the connection
	connUnsent     int64  // connection window consumed and not yet given back
	goAway         bool
	goAwayLast     uint32
	closing        bool // no new streams (GOAWAY, Close, ids exhausted, writes stuck)
	closed         bool
	dead           bool // onDead was called
	err            error
	notHTTP2       bool   // the read loop read an HTTP/1.x answer to the preface (readLoop)
	rsts           []byte // RST_STREAM frames queued by resetLocked, not written yet
	pings          map[[8]byte]chan struct{}
	pingSeq        uint64
	// cut: a write in progress was stopped by a deadline in the past, because the stream it
	// wrote for ended (clientStream.cancel); cleared when that write ended whole all the same.
	cut bool

	// What the pool's life records and close reasons read (lifeFacts), kept by the read
	// loop from the frames it handles anyway (under mu).
	facts lifeFacts
	rd    connReader
}

// lifeFacts is what a connection's life record says of the backend's side: its latest
// GOAWAY, the resets it sent, and when it closed the connection.
type lifeFacts struct {
	goAway     bool
	goAwayCode http2.ErrCode // of the latest GOAWAY
	goAwayLast uint32        // the latest GOAWAY's last-stream-id (goAwayLast above is the lowest)
	refused    int64         // RST_STREAM(REFUSED_STREAM) frames
	writeStuck bool          // a write blocked past a request's end: the connection stopped taking streams (writesStuckLocked)
	resets     int64         // other RST_STREAM frames
	eofAt      int64         // unix nanoseconds the read side failed (backend closed); 0 while open
}

// lifeFacts reports what the read loop kept for the pool's records.
func (cc *clientConn) lifeFacts() lifeFacts {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	return cc.facts
}

// connReader is the socket under the read loop's buffer. It counts the reads that returned
// bytes (the pool's read-idle check compares the count between sweeps: a counter costs
// ~14 ns, a time stamp per read ~160 ns on the kvm-clock of the measuring machine) and keeps
// the error that ended them: a failed read is the backend's close (or the pool's), not a
// frame the client refused.
type connReader struct {
	nc    net.Conn
	reads atomic.Uint64
	err   error // read loop only
	// first holds the connection's first bytes (firstN of them; read loop only), to tell
	// an HTTP/1.x server's answer to the preface (readLoop).
	first  [5]byte
	firstN int
}

func (r *connReader) Read(p []byte) (int, error) {
	n, err := r.nc.Read(p)
	if n > 0 {
		r.reads.Add(1)
		if r.firstN < len(r.first) {
			r.firstN += copy(r.first[r.firstN:], p[:n])
		}
	}
	if err != nil {
		r.err = err
	}
	return n, err
}

// newClientConn writes the client preface and SETTINGS on nc and starts the read loop.
func newClientConn(nc net.Conn, onDead func()) (*clientConn, error) {
	cc := &clientConn{
		nc: nc, onDead: onDead, settled: make(chan struct{}), readDone: make(chan struct{}), wmu: newWLock(),
		streams: map[uint32]*clientStream{}, nextID: 1, maxStreams: initialMaxStreams,
		peerMaxFrame: 16384, peerInitWindow: 65535, sendWindow: 65535, recvWindow: connWindow,
		pings: map[[8]byte]chan struct{}{},
	}
	cc.cond.L = &cc.mu
	cc.limit.Store(-1)
	cc.henc = hpack.NewEncoder(&cc.hbuf)
	// Buffered: the Framer reads a frame's header and payload separately, a syscall each
	// on the bare socket (a unary call's three response frames took six reads).
	cc.rd.nc = nc
	cc.fr = http2.NewFramer(nil, bufio.NewReaderSize(&cc.rd, 16<<10))
	cc.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	cc.fr.MaxHeaderListSize = maxHeaderListSize
	cc.fr.SetMaxReadFrameSize(maxReadFrame)
	cc.fr.SetReuseFrames()
	b := append([]byte(nil), http2.ClientPreface...)
	b = appendFrameHeader(b, 24, ftSettings, 0, 0)
	b = appendSetting(b, http2.SettingEnablePush, 0)
	b = appendSetting(b, http2.SettingMaxFrameSize, maxReadFrame)
	b = appendSetting(b, http2.SettingInitialWindowSize, streamWindow)
	b = appendSetting(b, http2.SettingMaxHeaderListSize, maxHeaderListSize)
	b = appendWindowUpdate(b, 0, connWindow-65535)
	if _, err := nc.Write(b); err != nil {
		return nil, err
	}
	go cc.readLoop()
	return cc, nil
}

func appendFrameHeader(b []byte, length int, typ, flags byte, id uint32) []byte {
	return append(b, byte(length>>16), byte(length>>8), byte(length), typ, flags,
		byte(id>>24), byte(id>>16), byte(id>>8), byte(id))
}

func appendSetting(b []byte, id http2.SettingID, v uint32) []byte {
	b = binary.BigEndian.AppendUint16(b, uint16(id))
	return binary.BigEndian.AppendUint32(b, v)
}

func appendWindowUpdate(b []byte, id, incr uint32) []byte {
	b = appendFrameHeader(b, 4, ftWindowUpdate, 0, id)
	return binary.BigEndian.AppendUint32(b, incr)
}

func appendRST(b []byte, id uint32, code http2.ErrCode) []byte {
	b = appendFrameHeader(b, 4, ftRSTStream, 0, id)
	return binary.BigEndian.AppendUint32(b, uint32(code))
}

// write sends b (built by fill under wmu) in one Write; a failed write closes the
// connection.
func (cc *clientConn) write(fill func(b []byte) []byte) error {
	cc.wmu.Lock()
	err := cc.writeLocked(fill(cc.wbuf[:0]))
	cc.wmu.Unlock()
	return err
}

// writeLocked writes b (under wmu), keeping it as the next write buffer.
func (cc *clientConn) writeLocked(b []byte) error {
	_, err := cc.writeLockedN(b)
	return err
}

// writeLockedN is writeLocked, also reporting how many bytes of b were written.
func (cc *clientConn) writeLockedN(b []byte) (int, error) {
	if cap(b) <= 64<<10 {
		cc.wbuf = b[:0]
	}
	if cc.werr != nil {
		return 0, cc.werr
	}
	n, err := cc.nc.Write(b)
	if err != nil {
		cc.mu.Lock()
		if cc.cut { // stopped: it was stuck past its stream's end
			cc.writesStuckLocked()
		}
		unsettled := !cc.seenSettings && !cc.cut
		if unsettled {
			cc.closing = true // no new stream while the read loop has the last word
		}
		cc.mu.Unlock()
		cc.werr = fmt.Errorf("http2: write: %w", err)
		// Not under wmu: closing fails streams, whose writers take it. Unsettled, the read
		// loop may yet read an HTTP/1.x answer: it closes (nothttp2.go).
		if unsettled {
			go cc.closeAfterRead(cc.werr)
		} else {
			go cc.closeWith(cc.werr)
		}
		return n, cc.werr
	}
	return n, nil
}

// writesStuckLocked stops the connection taking new streams at once, as a GOAWAY does, because
// a write on it blocked past a request's end: the backend stopped reading (or reads too
// slowly to carry a stream within its try). The streams it carries run on (or fail with the
// stopped write); the pool learns it through onDead (markDead, called after cc.mu is
// released) and records write_stuck as its close reason. Under cc.mu.
func (cc *clientConn) writesStuckLocked() {
	cc.closing = true
	cc.facts.writeStuck = true
}

// State reports what the pool reads of the connection.
func (cc *clientConn) State() connState {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	st := connState{Closed: cc.closed, Closing: cc.closing || cc.goAway}
	if cc.seenSettings {
		st.MaxConcurrentStreams = cc.maxStreams
	}
	return st
}

// ReserveNewRequest reserves a stream for a roundTrip to come, and reports false when the
// connection takes no new stream (closing, or at the peer's MAX_CONCURRENT_STREAMS).
func (cc *clientConn) ReserveNewRequest() bool {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if cc.closed || cc.closing || cc.goAway {
		return false
	}
	n := len(cc.streams) + cc.reserved
	if uint32(n+1) > cc.maxStreams || int64(cc.nextID)+2*int64(n) >= math.MaxInt32 {
		return false
	}
	cc.reserved++
	return true
}

// Ping sends a PING and waits for its answer until ctx ends.
func (cc *clientConn) Ping(ctx context.Context) error {
	var data [8]byte
	ch := make(chan struct{})
	cc.mu.Lock()
	if cc.closed {
		cc.mu.Unlock()
		return errConnLost
	}
	cc.pingSeq++
	binary.BigEndian.PutUint64(data[:], cc.pingSeq)
	cc.pings[data] = ch
	cc.mu.Unlock()
	defer func() {
		cc.mu.Lock()
		delete(cc.pings, data)
		cc.mu.Unlock()
	}()
	// The write goes in its own goroutine: wmu may be held by a writer stuck on a backend
	// that stopped reading, and the PING's wait must end with ctx so that the pool retires
	// the connection (closing it ends the stuck write, and this one).
	werr := make(chan error, 1)
	go func() {
		werr <- cc.write(func(b []byte) []byte {
			return append(appendFrameHeader(b, 8, ftPing, 0, 0), data[:]...)
		})
	}()
	select {
	case err := <-werr:
		if err != nil {
			return err
		}
	case <-cc.readDone:
		return errConnLost
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-ch:
		return nil
	case <-cc.readDone:
		return errConnLost
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close closes the connection; its streams fail. onDead is not called: the pool closing
// it knows (and may hold its own lock).
func (cc *clientConn) Close() error {
	cc.mu.Lock()
	cc.dead = true
	cc.mu.Unlock()
	cc.closeWith(errClientConnClosed)
	return nil
}

// closeWith closes the connection, failing its streams with err, and tells the pool.
func (cc *clientConn) closeWith(err error) {
	cc.mu.Lock()
	if cc.closed {
		cc.mu.Unlock()
		return
	}
	cc.closed, cc.closing, cc.err = true, true, err
	cc.failStreamsLocked(err)
	cc.mu.Unlock()
	cc.nc.Close()
	cc.markDead()
}

// failStreamsLocked fails every stream: with ErrUnprocessed those above a GOAWAY's
// last-stream-id, with err the others.
func (cc *clientConn) failStreamsLocked(err error) {
	for id, cs := range cc.streams {
		e := err
		if cc.goAway && id > cc.goAwayLast {
			e = ErrUnprocessed
		}
		cs.abortLocked(e)
		delete(cc.streams, id)
	}
	cc.cond.Broadcast()
}

// markDead tells the pool, once, that the connection takes no new streams.
func (cc *clientConn) markDead() {
	cc.mu.Lock()
	was := cc.dead
	cc.dead = true
	cc.mu.Unlock()
	if !was && cc.onDead != nil {
		cc.onDead()
	}
}

// roundTrip sends req as a new stream, on a reservation ReserveNewRequest made, and returns
// the response once its head arrived.
func (cc *clientConn) roundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	if err := ctx.Err(); err != nil {
		cc.unreserve()
		closeBody(req)
		return nil, err
	}
	cs := &clientStream{cc: cc, req: req, head: make(chan struct{}), ready: make(chan struct{}, 1)}
	// A body held in memory is read here, so that its DATA may go with the HEADERS.
	var held []byte
	var heldBuf *[]byte
	heldEOF := false
	body := req.Body
	if body == http.NoBody {
		body = nil
	}
	if body != nil {
		if hb, ok := body.(interface{ Held() bool }); ok && hb.Held() {
			heldBuf = heldBufs.Get().(*[]byte)
			held, heldEOF = readHeld(body, (*heldBuf)[:0])
		}
	}
	// A body with trailers (req.Trailer not nil) ends with them, after its DATA: its writer
	// sends the trailing HEADERS (writeBody).
	trailers := body != nil && req.Trailer != nil
	endWithHeaders := body == nil || heldEOF && len(held) == 0 && !trailers
	inline := body == nil || heldEOF && len(held) <= 16384 && !trailers
	cs.stopCtx = context.AfterFunc(ctx, func() { cs.cancel(ctx.Err()) })
	err := cc.startStream(cs, endWithHeaders, inline, held)
	if cs.askRead { // its write failed before the peer's SETTINGS came (nothttp2.go)
		if nerr := cc.notHTTP2Err(ctx, err); nerr != nil {
			err = nerr
		}
	}
	if heldBuf != nil && (err != nil || cs.inlineSent || endWithHeaders) {
		*heldBuf = held[:0]
		heldBufs.Put(heldBuf)
		heldBuf = nil
	}
	if err != nil {
		cs.stopCtx()
		closeBody(req)
		return nil, err
	}
	if body != nil && !cs.inlineSent && !endWithHeaders {
		cs.wdone = make(chan struct{})
		go cs.writeBody(body, held, heldEOF, heldBuf)
	} else if body != nil {
		body.Close()
	}
	if cs.headCut { // the request ended while its HEADERS were written, and they got out
		cs.cancel(ctx.Err())
	}
	<-cs.head
	if cs.resp == nil {
		cs.stopCtx()
		return nil, cs.headErr
	}
	return cs.resp, nil
}

var heldBufs = sync.Pool{New: func() any { b := make([]byte, 0, 16384); return &b }}

// readHeld reads a held body (whose reads do not block) into b, up to heldBodyMax bytes.
func readHeld(body io.Reader, b []byte) ([]byte, bool) {
	for len(b) < heldBodyMax {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := body.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			return b, true
		}
		if err != nil {
			return b, false // writeBody reads again and fails the stream
		}
	}
	return b, false
}

func closeBody(req *http.Request) {
	if req.Body != nil {
		req.Body.Close()
	}
}

func (cc *clientConn) unreserve() {
	cc.mu.Lock()
	if cc.reserved > 0 {
		cc.reserved--
	}
	cc.mu.Unlock()
}

// startStream gives cs its id and writes its HEADERS (ending the stream when end), and with
// inline the held body as DATA with END_STREAM in the same write when the windows allow.
func (cc *clientConn) startStream(cs *clientStream, end, inline bool, held []byte) error {
	if err := cc.wmu.LockCtx(cs.req.Context()); err != nil {
		// Another write held the connection for all of this request's time: no later
		// stream is to wait behind it (writesStuckLocked).
		cc.mu.Lock()
		if cc.reserved > 0 {
			cc.reserved--
		}
		cc.writesStuckLocked()
		cc.mu.Unlock()
		cc.markDead()
		return fmt.Errorf("%w: its HEADERS waited for the connection's writes until %w", ErrUnprocessed, err)
	}
	defer cc.wmu.Unlock()
	cc.mu.Lock()
	if cc.reserved > 0 {
		cc.reserved--
	}
	if cc.closed || cc.goAway || cc.werr != nil {
		cc.mu.Unlock()
		return ErrUnprocessed // nothing of it was sent: the connection could not take it
	}
	if err := cs.req.Context().Err(); err != nil { // cancel ran, and left the stream to this check
		cc.mu.Unlock()
		return fmt.Errorf("%w: its request ended before its HEADERS were written: %w", ErrUnprocessed, err)
	}
	cs.id = cc.nextID
	cc.nextID += 2
	cs.sendWindow = cc.peerInitWindow
	cs.recvWindow = streamWindow
	maxFrame, maxList := cc.peerMaxFrame, cc.peerMaxList
	if end {
		cs.localDone = true
	}
	sendData := inline && !end && int64(len(held)) <= cc.sendWindow && int64(len(held)) <= cs.sendWindow
	if sendData {
		cc.sendWindow -= int64(len(held))
		cs.sendWindow -= int64(len(held))
		cs.localDone = true
		cs.inlineSent = true
	}
	cc.streams[cs.id] = cs
	cs.headWriting = true
	// Resets not written yet go first: the backend counts their streams until it reads
	// them (resetLocked), and this stream may have taken one's slot.
	b := cc.takeResetsLocked(cc.wbuf[:0])
	cc.mu.Unlock()
	var n, headLen int
	err := cc.encodeHeaders(cs.req, maxList)
	if err != nil && len(b) > 0 {
		cc.writeLocked(b)
	}
	if err == nil {
		b = cc.appendHeaders(b, cs.id, end, maxFrame)
		headLen = len(b)
		if sendData {
			b = appendFrameHeader(b, len(held), ftData, flagEndStream, cs.id)
			b = append(b, held...)
		}
		n, err = cc.writeLockedN(b)
	}
	cc.mu.Lock()
	cs.headWriting = false
	if err != nil {
		delete(cc.streams, cs.id)
	}
	cut := cs.headCut
	// A GOAWAY below it or REFUSED_STREAM came during the write: the backend said it will
	// not process the stream, however much of the write got out.
	refused := errors.Is(cs.err, ErrUnprocessed) || cc.goAway && cs.id > cc.goAwayLast
	unsettled := err != nil && !cc.seenSettings && !cut
	cc.mu.Unlock()
	if cut {
		cc.uncut()
	}
	// Asked by roundTrip, not here under wmu: the read loop may write (GOAWAY) to end.
	cs.askRead = unsettled && headLen > 0
	switch {
	case err == nil: // when cut, roundTrip resets the stream
		return nil
	case headLen == 0: // not encoded (errHeaderListSize): nothing was written
		return err
	case refused:
		return fmt.Errorf("%w: refused by the backend while its write failed: %w", ErrUnprocessed, err)
	case cut:
		err = fmt.Errorf("its request ended while its HEADERS were written, and the write was stopped: %w", err)
	}
	if n < headLen { // the header block did not all get out: the backend cannot have processed it
		return fmt.Errorf("%w: its HEADERS were cut short: %w", ErrUnprocessed, err)
	}
	return err
}

// longAgo is a write deadline that stops a write in progress.
var longAgo = time.Unix(1, 0)

// uncut ends a cut (under wmu, after the write it was for): a write that ended whole before
// the deadline took clears it, so that later writes do not meet it; one that was stopped
// closed the connection and told the pool (writeLockedN, writesStuckLocked).
func (cc *clientConn) uncut() {
	if cc.werr == nil {
		cc.nc.SetWriteDeadline(time.Time{})
	}
	cc.mu.Lock()
	cc.cut = false
	cc.mu.Unlock()
	if cc.werr != nil {
		cc.markDead()
	}
}

// appendHeaders appends the header block in hbuf as HEADERS and CONTINUATION frames of at
// most maxFrame bytes.
func (cc *clientConn) appendHeaders(b []byte, id uint32, end bool, maxFrame uint32) []byte {
	block := cc.hbuf.Bytes()
	typ := byte(ftHeaders)
	var flags byte
	if end {
		flags = flagEndStream
	}
	for first := true; first || len(block) > 0; first = false {
		n := min(len(block), int(maxFrame))
		f := flags
		if n == len(block) {
			f |= flagEndHeaders
		}
		b = appendFrameHeader(b, n, typ, f, id)
		b = append(b, block[:n]...)
		block = block[n:]
		typ, flags = ftContinuation, 0
	}
	return b
}

// errHeaderListSize fails a request whose head is larger than the peer takes.
var errHeaderListSize = errors.New("http2: request header list larger than peer's advertised limit")

// encodeHeaders HPACK-encodes req's head into hbuf (under wmu), as RFC 9113 §8.3.1 has it:
// the pseudo-fields, then the fields with lower-case names, without the connection-specific
// ones; content-length from req.ContentLength.
func (cc *clientConn) encodeHeaders(req *http.Request, maxList uint32) error {
	host := req.Host
	if host == "" {
		host = req.URL.Host
	}
	path := req.URL.RequestURI()
	var cl string
	trailer := declaredTrailers(req)
	switch {
	case req.ContentLength > 0:
		cl = strconv.FormatInt(req.ContentLength, 10)
	case req.ContentLength == 0 && (req.Body == nil || req.Body == http.NoBody) &&
		(req.Method == "POST" || req.Method == "PUT" || req.Method == "PATCH"):
		cl = "0"
	}
	if maxList > 0 {
		size := uint64(len(":method")+len(req.Method)+len(":authority")+len(host)+len(":path")+len(path)+len(":scheme")+len(req.URL.Scheme)) + 4*32
		if cl != "" {
			size += uint64(len("content-length") + len(cl) + 32)
		}
		if trailer != "" {
			size += uint64(len("trailer") + len(trailer) + 32)
		}
		for k, vs := range req.Header {
			for _, v := range vs {
				size += uint64(len(k) + len(v) + 32)
			}
		}
		if size > uint64(maxList) {
			return errHeaderListSize
		}
	}
	cc.hbuf.Reset()
	e := cc.henc
	e.WriteField(hpack.HeaderField{Name: ":method", Value: req.Method})
	e.WriteField(hpack.HeaderField{Name: ":authority", Value: host})
	e.WriteField(hpack.HeaderField{Name: ":path", Value: path})
	e.WriteField(hpack.HeaderField{Name: ":scheme", Value: req.URL.Scheme})
	for k, vs := range req.Header {
		name, ok := lowerName(k)
		if !ok {
			continue
		}
		for _, v := range vs {
			if name == "te" && v != "trailers" {
				continue
			}
			e.WriteField(hpack.HeaderField{Name: name, Value: v, Sensitive: name == "authorization" || name == "proxy-authorization"})
		}
	}
	if cl != "" {
		e.WriteField(hpack.HeaderField{Name: "content-length", Value: cl})
	}
	if trailer != "" {
		e.WriteField(hpack.HeaderField{Name: "trailer", Value: trailer})
	}
	return nil
}

// declaredTrailers is the trailer field naming req.Trailer's keys when they are known with
// the head (sorted, lower-case, as x/net declared them), "" when none are.
func declaredTrailers(req *http.Request) string {
	if len(req.Trailer) == 0 {
		return ""
	}
	keys := make([]string, 0, len(req.Trailer))
	for k := range req.Trailer {
		if name, ok := lowerName(k); ok {
			keys = append(keys, name)
		}
	}
	slices.Sort(keys)
	return strings.Join(keys, ",")
}

// encodeTrailers HPACK-encodes trailer into hbuf (under wmu), without the fields HTTP/2
// does not carry; errHeaderListSize when above the peer's limit (maxList, 0: none).
func (cc *clientConn) encodeTrailers(trailer http.Header, maxList uint32) error {
	var size uint64
	for k, vs := range trailer {
		for _, v := range vs {
			size += uint64(len(k) + len(v) + 32)
		}
	}
	if maxList > 0 && size > uint64(maxList) {
		return errHeaderListSize
	}
	cc.hbuf.Reset()
	for k, vs := range trailer {
		name, ok := lowerName(k)
		if !ok {
			continue
		}
		for _, v := range vs {
			cc.henc.WriteField(hpack.HeaderField{Name: name, Value: v})
		}
	}
	return nil
}

// lowerName is the HTTP/2 name of field k, false for a field HTTP/2 does not carry
// (connection-specific ones, RFC 9113 §8.2.2; Content-Length, written from the request's
// length; Host, which is :authority).
func lowerName(k string) (string, bool) {
	if n, ok := commonLower[k]; ok {
		return n, n != ""
	}
	if strings.EqualFold(k, "connection") || strings.EqualFold(k, "keep-alive") || strings.EqualFold(k, "proxy-connection") ||
		strings.EqualFold(k, "transfer-encoding") || strings.EqualFold(k, "upgrade") || strings.EqualFold(k, "host") ||
		strings.EqualFold(k, "content-length") {
		return "", false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; 'A' <= c && c <= 'Z' {
			return strings.ToLower(k), true
		}
	}
	return k, true
}

// commonLower maps canonical names to their HTTP/2 spelling ("" for fields left out), so
// that the usual ones cost no allocation.
var commonLower = func() map[string]string {
	m := map[string]string{}
	for _, k := range []string{"Accept", "Accept-Charset", "Accept-Encoding", "Accept-Language", "Authorization",
		"Cache-Control", "Content-Encoding", "Content-Type", "Cookie", "Date", "Etag", "Expect",
		"Forwarded", "Grpc-Accept-Encoding", "Grpc-Encoding", "Grpc-Timeout", "If-Match", "If-Modified-Since",
		"If-None-Match", "Origin", "Pragma", "Range", "Referer", "Te", "Traceparent", "Tracestate", "User-Agent", "Via",
		"X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip", "X-Request-Id"} {
		m[k] = strings.ToLower(k)
	}
	for _, k := range []string{"Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "Upgrade", "Host", "Content-Length"} {
		m[k] = ""
	}
	return m
}()
