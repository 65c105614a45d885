package server

// A Stream's side of the HTTP/2 connection (h2own.go): its request body, fed by the connection's
// read loop, and its response frames, built in the stream's own buffer and appended to
// the connection's output.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"sync"
	"time"

	"golang.org/x/net/http2"

	"sluice/internal/h1"
	"sluice/internal/netio"
	"sluice/internal/reason"
)

// ownStream is a Stream's state on its connection.
type ownStream struct {
	o  *h2Own
	id uint32

	// Guarded by o.mu.
	inMap        bool  // in o.streams
	gone         bool  // reset by the client, or the connection ended
	remoteClosed bool  // the request ended (END_STREAM)
	sendWin      int64 // the client's window for this stream's DATA
	recvUsed     int64 // request DATA bytes received and not yet given back
	recvPend     int64 // of those, consumed and to be given back
	recvTotal    int64 // request body bytes received
	declaredIn   int64 // the request's content-length (-1: none)
	pins         int   // the read loop still uses the Stream (see goneUnpin)
	served       bool  // the handler is done: the Stream goes back to its pool when unpinned
	pushed       bool  // some of the response went to the connection's output
	expect100    bool  // the request has "Expect: 100-continue"

	listSize int  // the decoded header list size (RFC 9113 §6.5.2)
	big      bool // the list was over the decoding bound (an HPACK bomb): not all kept

	// The request body: rmu guards body, boff, rerr and reqTrailer.
	rmu        sync.Mutex
	body       []byte
	boff       int
	rerr       error // io.EOF once the request ended
	reqTrailer h1.Header
	wake       chan struct{}
	rtimer     *time.Timer

	// The watch of the body's waits (WatchBody), on the handler's goroutine.
	watch                func() bool
	watchFirst, watchMax time.Duration

	// The response side (the handler's goroutine).
	wbuf     []byte // frames not yet appended to the connection's output
	hbuf     []byte // a header block being encoded
	lastOff  int    // where the last frame in wbuf begins (-1: none)
	finished bool   // END_STREAM was written (trailers)
}

func (s *Stream) initOwn() {
	s.Start = s.x.o.blk.at // when its HEADERS frame was read, however long its CONTINUATIONs took
	s.bodyLimit = s.h.c.st.MaxBodyBytes
	// A context made when needed (h2ctx.go), from Background when it is: not a child of the
	// connection's context, whose set of children (a map under the parent's lock, shared by
	// the connection's streams) a child joins when made and leaves when released (3.0% of
	// the gateway's CPU with that link, 2.0% without, at 32 streams per connection). Nothing
	// is lost: the connection's context is canceled only when the connection ends
	// (conn.serve, after this read loop) or by a forced shutdown, which also closes the
	// socket, so the read loop ends and serve's end cancels every open stream (ownGone,
	// with the shutdown's cause).
	s.ctx = new(streamCtx)
	s.x.lastOff = -1
	if s.x.wake == nil {
		s.x.wake = make(chan struct{}, 1)
	}
	ct, _ := s.Req.Header.Get("Content-Type")
	s.grpc = len(ct) >= 16 && string(ct[:16]) == "application/grpc"
}

// ownGone ends the stream's context (the client reset it, or the connection ended), wakes
// what waits on it and runs its OnCancel function.
func (s *Stream) ownGone(cause error) {
	s.x.rmu.Lock()
	if s.x.rerr == nil || s.x.rerr == io.EOF && len(s.x.body) > s.x.boff {
		s.x.rerr = cause
	}
	s.x.rmu.Unlock()
	s.wakeBody()
	// The connection's cause when it has one (a forced shutdown), else the given one.
	var re *reason.Error
	if c := context.Cause(s.h.c.ctx); errors.As(c, &re) {
		cause = re
	}
	s.ctx.end(cause)
	s.mu.Lock()
	f := s.onCancel
	s.onCancel = nil
	s.mu.Unlock()
	if f != nil {
		f()
	}
}

func (s *Stream) wakeBody() {
	select {
	case s.x.wake <- struct{}{}:
	default:
	}
}

// readOwn is ReadBody for the own codec.
func (s *Stream) readOwn(p []byte) (int, error) {
	x := &s.x
	for {
		x.rmu.Lock()
		if x.boff < len(x.body) {
			n := copy(p, x.body[x.boff:])
			x.boff += n
			if x.boff == len(x.body) {
				x.body, x.boff = x.body[:0], 0
			}
			x.rmu.Unlock()
			s.consumed(int64(n))
			return n, nil
		}
		err := x.rerr
		x.rmu.Unlock()
		if err != nil {
			return 0, err
		}
		if x.expect100 {
			s.continue100()
		}
		var tc <-chan time.Time
		if d := s.h.c.st.ReadTimeout; d > 0 {
			if x.rtimer == nil {
				x.rtimer = time.NewTimer(d)
			} else {
				x.rtimer.Reset(d)
			}
			tc = x.rtimer.C
		}
		out := s.bytesOut.Load()
		stopped, timedOut := s.waitOwn(tc)
		if timedOut {
			if s.bytesOut.Load() != out {
				// The response moved while the client was quiet: a full-duplex stream (a
				// gRPC bidi call whose client sent its request and now only receives, as a
				// subscription does) is not a client gone silent; the wait starts again.
				continue
			}
			return 0, os.ErrDeadlineExceeded
		}
		if x.rtimer != nil {
			x.rtimer.Stop()
		}
		if stopped {
			return 0, netio.ErrWatchStopped
		}
	}
}

// waitOwn waits for the read loop's wake or tc (timedOut). With a watch set (WatchBody) the
// wait runs in steps, first doubling up to max, and the watch runs between them: false
// ends the wait (stopped).
func (s *Stream) waitOwn(tc <-chan time.Time) (stopped, timedOut bool) {
	x := &s.x
	var t *time.Timer
	var stepC <-chan time.Time // nil without a watch: never ready
	step := x.watchFirst
	if x.watch != nil {
		t = time.NewTimer(step) // a watched wait is rare: the body of a request to a slow or refusing backend
		defer t.Stop()
		stepC = t.C
	}
	for {
		select {
		case <-x.wake:
			return false, false
		case <-tc:
			return false, true
		case <-stepC:
			if !x.watch() {
				return true, false
			}
			step = min(2*step, x.watchMax)
			t.Reset(step)
		}
	}
}

// WatchBody makes the waits for request body bytes run f between steps (proxy.BodyWatcher):
// false fails the read with netio.ErrWatchStopped, the rest of the body is abandoned and
// the stream is reset after the response. The proxy so sees an HTTP/1.1 upstream's early
// answer (401, 413) while the client is slow to send, as on an HTTP/1.1 connection.
func (s *Stream) WatchBody(f func() bool, first, max time.Duration) {
	s.x.watch, s.x.watchFirst, s.x.watchMax = f, first, max
}

// continue100 sends "100 Continue" before the first wait for the body of a request that
// expects it, unless the response began.
func (s *Stream) continue100() {
	o, x := s.x.o, &s.x
	o.mu.Lock()
	if x.expect100 && !x.pushed && !x.gone && o.werr == nil {
		o.out = appendFrame(o.out, frameHeaders, flagEndHeaders, x.id, []byte{0x08, 3, '1', '0', '0'})
		o.wcond.Signal()
	}
	x.expect100 = false
	o.mu.Unlock()
}

// consumed gives n request body bytes read by the handler back to the client's windows.
func (s *Stream) consumed(n int64) {
	o, x := s.x.o, &s.x
	o.mu.Lock()
	if x.inMap {
		o.giveBackStreamLocked(x, n)
	}
	o.mu.Unlock()
}

// copyOwnTrailer moves the request's trailer fields to s.trailer once the body ended.
func (s *Stream) copyOwnTrailer() {
	s.x.rmu.Lock()
	s.trailer.Fields = append(s.trailer.Fields, s.x.reqTrailer.Fields...)
	s.x.reqTrailer.Fields = s.x.reqTrailer.Fields[:0]
	s.x.rmu.Unlock()
	if s.h.c.st.Underscores != UnderscoresAllow && len(s.trailer.Fields) > 0 {
		s.droppedTr.Add(int32(s.trailer.RemoveFunc(hasUnderscore)))
	}
}

// HPACK encoding without the dynamic table: every field a literal that is not indexed
// (RFC 7541 §6.2.2), the status from the static table when it is there. No state is
// shared between streams, so each encodes its own blocks in any order.

// staticStatus are the static table's :status entries (RFC 7541 Appendix A).
func staticStatus(status int) byte {
	switch status {
	case 200:
		return 8
	case 204:
		return 9
	case 206:
		return 10
	case 304:
		return 11
	case 400:
		return 12
	case 404:
		return 13
	case 500:
		return 14
	}
	return 0
}

func appendHpackInt(b []byte, first byte, prefix uint, v int) []byte {
	max := 1<<prefix - 1
	if v < max {
		return append(b, first|byte(v))
	}
	b = append(b, first|byte(max))
	v -= max
	for v >= 128 {
		b = append(b, byte(v&0x7f|0x80))
		v >>= 7
	}
	return append(b, byte(v))
}

// appendLiteral appends a literal field without indexing with a new name (lower-cased).
func appendLiteral(b []byte, name, value []byte) []byte {
	b = append(b, 0)
	b = appendHpackInt(b, 0, 7, len(name))
	for _, c := range name {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	b = appendHpackInt(b, 0, 7, len(value))
	return append(b, value...)
}

// appendHeaderFrames frames the block in s.x.hbuf as HEADERS (and CONTINUATION) into wbuf.
func (s *Stream) appendHeaderFrames(flags byte) {
	o, x := s.x.o, &s.x
	o.mu.Lock()
	max := o.maxFrame
	o.mu.Unlock()
	blk := x.hbuf
	typ := byte(frameHeaders)
	x.lastOff = len(x.wbuf)
	for first := true; first || len(blk) > 0; first = false {
		n := min(len(blk), max)
		fl := flags
		if !first {
			fl = 0
		}
		if n == len(blk) {
			fl |= flagEndHeaders
		}
		x.wbuf = appendFrame(x.wbuf, typ, fl, x.id, blk[:n])
		blk = blk[n:]
		typ = frameContinuation
	}
}

// writeHeadOwn encodes the response head (see WriteHead).
func (s *Stream) writeHeadOwn(status int, h *h1.Header, contentLength int64) {
	x := &s.x
	b := x.hbuf[:0]
	if i := staticStatus(status); i != 0 {
		b = append(b, 0x80|i)
	} else {
		b = append(b, 0x08, 3, byte('0'+status/100%10), byte('0'+status/10%10), byte('0'+status%10))
	}
	var size int64
	if h != nil {
		for _, f := range h.Fields {
			if isConnectionField(f.Name) || h1.EqualFold(f.Name, "Content-Length") {
				continue
			}
			b = appendLiteral(b, f.Name, f.Value)
			size += int64(len(f.Name) + len(f.Value) + 4)
		}
	}
	if needsDate(status, h) { // date.go
		b = appendLiteral(b, []byte("date"), httpDate(time.Now()))
		size += int64(4 + dateLen + 4)
	}
	if contentLength >= 0 && status != 204 && status != 304 {
		var nb [20]byte
		b = appendLiteral(b, []byte("content-length"), strconv.AppendInt(nb[:0], contentLength, 10))
	}
	x.hbuf = b
	s.headBytes.Store(size + 13)
	s.appendHeaderFrames(0)
}

// writeOwn is Write for the own codec: DATA frames within the client's windows.
func (s *Stream) writeOwn(p []byte) (int, error) {
	o, x := s.x.o, &s.x
	done := 0
	var wt *windowTimer
	defer wt.stop()
	for len(p) > 0 {
		o.mu.Lock()
		var n int
		for {
			if x.gone || o.werr != nil {
				o.mu.Unlock()
				return done, errClientGone
			}
			n = int(min(int64(len(p)), int64(o.maxFrame), x.sendWin, o.connSend))
			if n > 0 {
				break
			}
			// No window: what is buffered goes out (the client answers it with
			// WINDOW_UPDATE), then wait, write_timeout at most (a client that never gives
			// window back holds the stream no longer than one that does not read).
			if len(x.wbuf) > 0 {
				// Not an answer that makes the client's next PING free: the client's
				// window forced these frames out, and a client that gives it back a byte
				// at a time would get a free PING per byte (24,000 a second on one
				// stream, h2ping_test.go).
				s.queueLocked(false)
			}
			if wt == nil && o.wto > 0 {
				w := &windowTimer{}
				w.t = time.AfterFunc(o.wto, func() {
					o.mu.Lock()
					w.expired = true
					o.space.Broadcast()
					o.mu.Unlock()
				})
				wt = w
			}
			if wt != nil && wt.expired {
				o.mu.Unlock()
				return done, errWindowTimeout
			}
			o.space.Wait()
		}
		if wt != nil { // window came: the next wait has its own write_timeout
			wt.stop()
			wt = nil
		}
		x.sendWin -= int64(n)
		o.connSend -= int64(n)
		o.mu.Unlock()
		x.lastOff = len(x.wbuf)
		x.wbuf = appendFrame(x.wbuf, frameData, 0, x.id, p[:n])
		p = p[n:]
		done += n
		if len(x.wbuf) >= 32<<10 {
			if err := s.pushOwn(); err != nil {
				return done, err
			}
		}
	}
	return done, nil
}

// windowTimer bounds a response writer's wait for flow-control window by write_timeout;
// expired is guarded by o.mu.
type windowTimer struct {
	t       *time.Timer
	expired bool
}

func (w *windowTimer) stop() {
	if w != nil {
		w.t.Stop()
	}
}

var errWindowTimeout = fmt.Errorf("HTTP/2 client gave no flow-control window within write_timeout: %w", os.ErrDeadlineExceeded)

// pushOwn appends the stream's buffered frames to the connection's output.
func (s *Stream) pushOwn() error {
	o, x := s.x.o, &s.x
	o.mu.Lock()
	for len(o.out) > h2MaxOut && o.werr == nil && !x.gone {
		o.space.Wait()
	}
	if x.gone || o.werr != nil {
		o.mu.Unlock()
		x.wbuf, x.lastOff = x.wbuf[:0], -1
		return errClientGone
	}
	s.queueLocked(true)
	o.mu.Unlock()
	return nil
}

// queueLocked moves the stream's buffered frames to the connection's output for the writer.
// answer: they are the handler's output (a flush, a full buffer, the stream's end), not frames
// the client's window forced out; an answer makes the client's next PING free (h2own.go
// count). Under o.mu.
func (s *Stream) queueLocked(answer bool) {
	o, x := s.x.o, &s.x
	x.pushed = true
	o.out = append(o.out, x.wbuf...)
	if answer {
		o.answered.Store(true)
	}
	o.wcond.Signal()
	x.wbuf, x.lastOff = x.wbuf[:0], -1
}

// finishOwn writes the trailer section, ending the stream.
func (s *Stream) finishOwn(trailer *h1.Header) {
	x := &s.x
	b := x.hbuf[:0]
	n := 0
	for _, f := range trailer.Fields {
		if isConnectionField(f.Name) {
			continue
		}
		b = appendLiteral(b, f.Name, f.Value)
		n++
	}
	x.hbuf = b
	if n == 0 {
		return
	}
	s.appendHeaderFrames(flagEndStream)
	x.finished = true
}

// endOwn completes the stream after its handler: END_STREAM (on its last frame when that is
// still buffered), or RST_STREAM INTERNAL_ERROR when reset; then the stream leaves the
// connection (with RST_STREAM NO_ERROR when the client had not finished its request,
// RFC 9113 §8.1).
func (s *Stream) endOwn(reset bool) {
	o, x := s.x.o, &s.x
	if !reset && !x.finished {
		if x.lastOff >= 0 && (x.wbuf[x.lastOff+3] == frameData || x.wbuf[x.lastOff+3] == frameHeaders) {
			x.wbuf[x.lastOff+4] |= flagEndStream
		} else {
			x.wbuf = appendFrame(x.wbuf, frameData, flagEndStream, x.id, nil)
		}
	}
	o.mu.Lock()
	if !x.gone && o.werr == nil {
		for len(o.out) > h2MaxOut && o.werr == nil && !x.gone {
			o.space.Wait()
		}
		x.pushed = true
		if reset {
			x.wbuf = appendRST(x.wbuf, x.id, http2.ErrCodeInternal)
			o.noteResetLocked(x.id)
		} else if !x.remoteClosed {
			x.wbuf = appendRST(x.wbuf, x.id, http2.ErrCodeNo)
			o.noteResetLocked(x.id)
		}
		if !o.writing && len(o.out) == 0 && len(o.streams) == 1 && !o.closing {
			// The connection's only stream, nothing else to send: it writes its
			// response itself, without the hand-off to the writer.
			o.writing = true
			o.answered.Store(true) // an answer as the hand-off below is (h2own.go count)
			o.removeLocked(s)
			x.gone = true
			o.mu.Unlock()
			o.armWrite()
			_, err := o.nc.Write(x.wbuf)
			x.wbuf, x.lastOff = x.wbuf[:0], -1
			o.mu.Lock()
			o.writing = false
			if err != nil && o.werr == nil {
				o.werr = err
			}
			o.wcond.Signal() // what others added meanwhile, or the close
			o.space.Broadcast()
			o.mu.Unlock()
			return
		}
		s.queueLocked(true)
	}
	x.wbuf, x.lastOff = x.wbuf[:0], -1
	o.removeLocked(s)
	x.gone = true
	o.mu.Unlock()
}

// ownKeep are the parts of an ownStream that a pooled Stream keeps: its buffers.
type ownKeep struct {
	wake             chan struct{}
	rtimer           *time.Timer
	wbuf, hbuf, body []byte
	reqTrailer       h1.Header
}

func (x *ownStream) keep() ownKeep {
	keep := func(b []byte) []byte {
		if cap(b) > 64<<10 {
			return nil
		}
		return b[:0]
	}
	x.reqTrailer.Reset()
	return ownKeep{x.wake, x.rtimer, keep(x.wbuf), keep(x.hbuf), keep(x.body), x.reqTrailer}
}

func (x *ownStream) restore(k ownKeep) {
	x.wake, x.rtimer, x.wbuf, x.hbuf, x.body, x.reqTrailer, x.lastOff = k.wake, k.rtimer, k.wbuf, k.hbuf, k.body, k.reqTrailer, -1
}
