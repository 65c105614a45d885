package h2pool

// One stream of a clientConn (client.go): its response body, its request body's writer, and
// its end. All fields after the channels are under clientConn.mu.

import (
	"errors"
	"fmt"
	"io"
	"net/http"

	"golang.org/x/net/http2"
)

// errBodyClosed ends a stream whose response body was closed before its end.
var errBodyClosed = errors.New("http2: response body closed")

type clientStream struct {
	cc      *clientConn
	req     *http.Request
	id      uint32
	head    chan struct{} // closed when resp or headErr is set
	ready   chan struct{} // one token: data, the end or an error came for the body reader
	stopCtx func() bool   // the request context's AfterFunc (caller's goroutine only)
	// wdone is closed when writeBody ended (nil without one): Close waits for it, so that
	// no read of the request body is in progress once the response body was closed (the
	// proxy's downstream stream is released then), as x/net's Close did.
	wdone chan struct{}

	resp       *http.Response
	headErr    error
	headDone   bool
	inlineSent bool // the held body went with the HEADERS
	askRead    bool // its HEADERS write failed before the peer's SETTINGS: the read loop tells why (startStream)
	// headWriting: its HEADERS (and inline DATA) are being written; headCut: its request
	// ended meanwhile, and the connection's write deadline was set to stop that write.
	headWriting bool
	headCut     bool
	// dataWriting, dataCut: the same for a DATA frame of its body (sendData).
	dataWriting bool
	dataCut     bool
	localDone   bool // END_STREAM sent
	remoteDone  bool // END_STREAM received
	reset       bool // reset either way (or the connection failed); out of cc.streams
	err         error
	bodyClosed  bool
	buf         []byte  // received DATA not read yet, from off (bodybuf.go)
	bufp        *[]byte // buf's pooled buffer, nil when it has none
	off         int
	sendWindow  int64
	recvWindow  int64 // what the peer may still send on the stream
	unsent      int64 // stream window consumed and not given back yet
	remain      int64 // the response's content-length still to come, -1 when unknown
	interim     int64 // the size of the 1xx heads' fields so far
}

var _ io.ReadCloser = (*clientStream)(nil)

// abortLocked fails the stream with err (its head, if it did not come, and its body).
func (cs *clientStream) abortLocked(err error) {
	if cs.err == nil {
		cs.err = err
	}
	cs.reset = true
	if !cs.headDone {
		cs.headDone, cs.headErr = true, err
		close(cs.head)
	}
	cs.notify()
}

func (cs *clientStream) notify() {
	select {
	case cs.ready <- struct{}{}:
	default:
	}
}

// endLocked takes the stream out of the connection's table once both sides ended.
func (cs *clientStream) endLocked() {
	if cs.localDone && cs.remoteDone && cs.cc.streams[cs.id] == cs {
		delete(cs.cc.streams, cs.id)
		cs.cc.cond.Broadcast()
	}
}

// resetLocked fails the stream with err and takes it out of the table, queueing its
// RST_STREAM with code when it was open (sendResets writes it). Its unread DATA is given
// back to the connection window.
//
// Out of the table, its slot under the backend's MAX_CONCURRENT_STREAMS may be taken at
// once (ReserveNewRequest), but the backend counts the stream until it reads the
// RST_STREAM: so the reset is queued here, under mu with the removal, and whichever writer
// takes wmu next writes it first, this stream's sendResets or a new stream's HEADERS
// (startStream). Written by sendResets alone, the next HEADERS could overtake it, and a
// backend at its limit refuses that stream (x/net's server with PROTOCOL_ERROR).
func (cs *clientStream) resetLocked(err error, code http2.ErrCode) {
	cc := cs.cc
	open := cc.streams[cs.id] == cs
	if open {
		delete(cc.streams, cs.id)
	}
	cs.abortLocked(err)
	cc.connUnsent += int64(len(cs.buf) - cs.off)
	cs.releaseBufLocked()
	cc.cond.Broadcast()
	if open && !(cs.localDone && cs.remoteDone) {
		cc.rsts = appendRST(cc.rsts, cs.id, code)
	}
}

// takeResetsLocked appends the queued RST_STREAM frames to b (under wmu and mu).
func (cc *clientConn) takeResetsLocked(b []byte) []byte {
	b = append(b, cc.rsts...)
	cc.rsts = cc.rsts[:0]
	return b
}

// sendResets writes the queued RST_STREAM frames (resetLocked), and a connection
// WINDOW_UPDATE when one is due.
func (cc *clientConn) sendResets() {
	cc.mu.Lock()
	due := len(cc.rsts) > 0 || cc.connUnsent >= connWindow/4 && !cc.closed
	cc.mu.Unlock()
	if !due {
		return
	}
	cc.wmu.Lock()
	cc.mu.Lock()
	b := cc.takeResetsLocked(cc.wbuf[:0])
	if incr := cc.connUpdateLocked(); incr > 0 {
		b = appendWindowUpdate(b, 0, incr)
	}
	cc.mu.Unlock()
	if len(b) > 0 { // a new stream's HEADERS may have taken the resets
		cc.writeLocked(b)
	}
	cc.wmu.Unlock()
}

// connUpdateLocked takes the connection window to give back, when enough was consumed.
func (cc *clientConn) connUpdateLocked() uint32 {
	if cc.connUnsent < connWindow/4 || cc.closed {
		return 0
	}
	n := cc.connUnsent
	cc.connUnsent = 0
	cc.recvWindow += n
	return uint32(n)
}

// cancel ends the stream because its request's context ended (RST_STREAM CANCEL), unless
// its response was received whole.
//
// A stream whose HEADERS write is in progress cannot be reset: its header block is not whole,
// and the HPACK encoder's table already holds its fields. Nor one whose DATA frame is being
// written: the reset would wait behind that write, and a frame cut short cannot be
// abandoned. The write is stopped by a deadline in the past instead (cc.cut); stopped, it
// closes the connection, which takes no new stream from then on and is recorded as
// write_stuck (writeLockedN); ended whole after all, the stream is reset as usual
// (startStream, sendData).
func (cs *clientStream) cancel(err error) {
	cc := cs.cc
	cc.mu.Lock()
	if cs.headWriting || cs.dataWriting {
		cs.headCut = cs.headWriting
		cs.dataCut = cs.dataWriting
		cc.cut = true
		cc.nc.SetWriteDeadline(longAgo)
		cc.mu.Unlock()
		return
	}
	if cs.id == 0 || cs.remoteDone || cs.reset { // not started: startStream sees the end
		cc.mu.Unlock()
		return
	}
	cs.resetLocked(err, http2.ErrCodeCancel)
	cc.mu.Unlock()
	cc.sendResets()
}

// Read reads the response body: the DATA received, then io.EOF after END_STREAM (with the
// trailers in resp.Trailer), or the stream's failure.
func (cs *clientStream) Read(p []byte) (int, error) {
	cc := cs.cc
	cc.mu.Lock()
	for cs.off == len(cs.buf) {
		if cs.remoteDone { // whole: what failed since (the request body's side) does not matter
			cc.mu.Unlock()
			return 0, io.EOF
		}
		if cs.err != nil {
			err := cs.err
			cc.mu.Unlock()
			return 0, err
		}
		cc.mu.Unlock()
		<-cs.ready
		cc.mu.Lock()
	}
	n := copy(p, cs.buf[cs.off:])
	cs.off += n
	if cs.off == len(cs.buf) { // drained: the buffer goes back until more comes (bodybuf.go)
		cs.releaseBufLocked()
	}
	cc.connUnsent += int64(n)
	connIncr := cc.connUpdateLocked()
	var streamIncr uint32
	if cc.streams[cs.id] == cs && !cs.remoteDone {
		if cs.unsent += int64(n); cs.unsent >= streamWindow/4 {
			streamIncr = uint32(cs.unsent)
			cs.recvWindow += cs.unsent
			cs.unsent = 0
		}
	}
	cc.mu.Unlock()
	if connIncr > 0 || streamIncr > 0 {
		cc.write(func(b []byte) []byte {
			if connIncr > 0 {
				b = appendWindowUpdate(b, 0, connIncr)
			}
			if streamIncr > 0 {
				b = appendWindowUpdate(b, cs.id, streamIncr)
			}
			return b
		})
	}
	return n, nil
}

// Close ends the response body; a stream not ended both ways is reset (CANCEL).
func (cs *clientStream) Close() error {
	cc := cs.cc
	cc.mu.Lock()
	if cs.bodyClosed {
		cc.mu.Unlock()
		return nil
	}
	cs.bodyClosed = true
	cs.resetLocked(errBodyClosed, http2.ErrCodeCancel)
	cc.mu.Unlock()
	if cs.stopCtx != nil {
		cs.stopCtx()
	}
	cc.sendResets()
	if cs.wdone != nil {
		// A writer blocked in the body's Read is woken by closing it, as x/net did (a body
		// may be closed while read: http.RoundTripper); the proxy's body ends its own reads.
		cs.req.Body.Close()
		select {
		case <-cs.wdone:
		case <-cs.req.Context().Done(): // the read in progress ends with the request
		}
	}
	return nil
}

// writeBody sends the request body that did not go with the HEADERS: first (read already;
// the whole body when firstEOF), then the rest read from body. It is the one goroutine a
// stream may have, for a body that streams from the client.
func (cs *clientStream) writeBody(body io.ReadCloser, first []byte, firstEOF bool, buf *[]byte) {
	defer close(cs.wdone)
	defer body.Close()
	if buf == nil {
		buf = heldBufs.Get().(*[]byte)
	}
	defer func() { *buf = (*buf)[:0]; heldBufs.Put(buf) }()
	data, eof := first, firstEOF
	var rerr error
	for {
		// With trailers, END_STREAM goes on them, sent after the body's last read. The map
		// is final once that read returned (the body fills it before it returns io.EOF):
		// still empty, the last DATA frame ends the stream, not an empty one after it.
		end := eof && len(cs.req.Trailer) == 0
		if (len(data) > 0 || end) && !cs.sendData(data, end) {
			return
		}
		if eof {
			if !end {
				cs.sendTrailers()
			}
			return
		}
		if rerr != nil {
			cs.bodyFailed(rerr)
			return
		}
		n, err := body.Read((*buf)[:cap(*buf)])
		data, eof = (*buf)[:n], err == io.EOF
		if err != nil && !eof {
			rerr = err
		}
	}
}

// bodyFailed resets the stream whose request body could not be read.
func (cs *clientStream) bodyFailed(err error) {
	cc := cs.cc
	cc.mu.Lock()
	if cs.reset {
		cc.mu.Unlock()
		return
	}
	cs.resetLocked(fmt.Errorf("http2: request body: %w", err), http2.ErrCodeCancel)
	cc.mu.Unlock()
	cc.sendResets()
}

// sendData writes data as DATA frames within the peer's frame size and windows, the last
// with END_STREAM when end; it reports false when the stream ended meanwhile.
func (cs *clientStream) sendData(data []byte, end bool) bool {
	cc := cs.cc
	for first := true; first || len(data) > 0; first = false {
		cc.mu.Lock()
		for !cs.reset && !cc.closed && len(data) > 0 && (cc.sendWindow <= 0 || cs.sendWindow <= 0) {
			cc.cond.Wait()
		}
		if cs.reset || cc.closed {
			cc.mu.Unlock()
			return false
		}
		n := int64(min(len(data), int(cc.peerMaxFrame)))
		n = min(n, cc.sendWindow, cs.sendWindow)
		cc.sendWindow -= n
		cs.sendWindow -= n
		cc.mu.Unlock()
		last := end && int(n) == len(data)
		cc.wmu.Lock()
		cc.mu.Lock()
		if cs.reset { // reset while this frame waited: it would be on a closed stream
			cc.sendWindow += n
			cc.mu.Unlock()
			cc.wmu.Unlock()
			return false
		}
		if last {
			cs.localDone = true
			cs.endLocked()
		}
		cs.dataWriting = true
		cc.mu.Unlock()
		var flags byte
		if last {
			flags = flagEndStream
		}
		b := appendFrameHeader(cc.wbuf[:0], int(n), ftData, flags, cs.id)
		err := cc.writeLocked(append(b, data[:n]...))
		cc.mu.Lock()
		cs.dataWriting = false
		cut := cs.dataCut
		cc.mu.Unlock()
		if cut {
			cc.uncut()
		}
		cc.wmu.Unlock()
		if cut && err == nil { // written whole before the deadline took: reset it now
			cs.cancel(cs.req.Context().Err())
			return false
		}
		if err != nil {
			return false
		}
		data = data[n:]
	}
	return true
}

// sendTrailers ends the stream with req.Trailer, read only now (after the body's last
// read, so that its reader may fill the map at the body's end, as x/net allowed): a
// HEADERS block with END_STREAM (writeBody ends the stream on the body's last DATA frame
// instead when the map is still empty then). A trailer section above the peer's limit
// fails the stream.
func (cs *clientStream) sendTrailers() {
	cc := cs.cc
	cc.wmu.Lock()
	cc.mu.Lock()
	if cs.reset || cc.closed {
		cc.mu.Unlock()
		cc.wmu.Unlock()
		return
	}
	maxFrame, maxList := cc.peerMaxFrame, cc.peerMaxList
	cc.mu.Unlock()
	b := appendFrameHeader(cc.wbuf[:0], 0, ftData, flagEndStream, cs.id)
	if len(cs.req.Trailer) > 0 {
		if err := cc.encodeTrailers(cs.req.Trailer, maxList); err != nil {
			cc.wmu.Unlock()
			cs.bodyFailed(err)
			return
		}
		b = cc.appendHeaders(cc.wbuf[:0], cs.id, true, maxFrame)
	}
	cc.mu.Lock()
	cs.localDone = true
	cs.endLocked()
	cc.mu.Unlock()
	cc.writeLocked(b) // a failed write fails the connection, and so the stream
	cc.wmu.Unlock()
}
