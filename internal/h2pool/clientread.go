package h2pool

// The read loop of a clientConn: one goroutine per connection reads every frame and acts on
// it (RFC 9113 §6). A stream error resets that stream; a connection error sends GOAWAY and
// ends the loop, which fails every stream (those above a GOAWAY's last-stream-id with
// ErrUnprocessed; the others, since the backend broke the protocol, with ErrProtocol).
//
// Streams the client never opened are idle (§5.1): odd ids from its next one on, and every
// even id, since the client refuses server push (SETTINGS_ENABLE_PUSH 0) and so no
// server-initiated stream can exist. HEADERS, DATA, RST_STREAM or WINDOW_UPDATE on one, or
// a PUSH_PROMISE (§6.6, §8.4), is a connection error PROTOCOL_ERROR; PRIORITY may come on
// any stream. x/net's Transport passes over such frames on even ids below its next id as
// if they were for streams it canceled; a backend that sends them is broken, and what else
// it sends on that connection cannot be trusted (issue #16).

import (
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/textproto"
	"strconv"
	"time"

	"golang.org/x/net/http2"

	"sluice/internal/h1"
)

func (cc *clientConn) readLoop() {
	err := cc.readFrames()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	lost := fmt.Errorf("%w: %w", errConnLost, err)
	if errors.As(err, new(http2.ConnectionError)) { // found in what the backend sent (connError)
		lost = fmt.Errorf("%w: %w: %w", errConnLost, ErrProtocol, err)
	}
	cc.mu.Lock()
	if !cc.seenSettings && string(cc.rd.first[:cc.rd.firstN]) == "HTTP/" {
		// An HTTP/1.x server's answer to the preface (a 400 or 505 status line), where an
		// HTTP/2 server's first frame is SETTINGS (RFC 9113 §3.4): it read no HTTP/2
		// frame, so no stream on the connection was processed.
		lost = fmt.Errorf("%w (%w)", ErrNotHTTP2, err)
		cc.notHTTP2 = true
	}
	if cc.rd.err != nil {
		cc.facts.eofAt = time.Now().UnixNano()
	}
	if !cc.closed {
		cc.closed, cc.closing, cc.err = true, true, err
		cc.failStreamsLocked(lost)
	}
	first := !cc.seenSettings
	cc.mu.Unlock()
	close(cc.readDone)
	if first { // no SETTINGS will come: the waiters find the connection closed
		close(cc.settled)
	}
	cc.nc.Close()
	cc.markDead()
}

// readFrames reads and handles frames until the connection fails.
func (cc *clientConn) readFrames() error {
	for {
		f, err := cc.fr.ReadFrame()
		if err != nil {
			if errors.Is(err, http2.ErrFrameTooLarge) { // past maxReadFrame (RFC 9113 §4.2)
				err = http2.ConnectionError(http2.ErrCodeFrameSize)
			} else if d := cc.fr.ErrorDetail(); d != nil && errors.As(err, new(http2.ConnectionError)) {
				err = fmt.Errorf("%v: %w", d, err) // what the Framer found ("pad size larger than data payload")
			}
			var se http2.StreamError
			if errors.As(err, &se) {
				// A bad frame (a zero WINDOW_UPDATE, padding past the payload), or, with a
				// cause, a head whose fields were invalid (names, values, pseudo-fields).
				serr := fmt.Errorf("%w: %w", ErrProtocol, se)
				if se.Cause != nil {
					serr = fmt.Errorf("%w: %w", ErrMalformedResponse, se)
				}
				if err := cc.streamError(se.StreamID, se.Code, serr); err != nil {
					return cc.connError(err)
				}
				continue
			}
			return cc.connError(err)
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			err = cc.onHeaders(f)
		case *http2.DataFrame:
			err = cc.onData(f)
		case *http2.SettingsFrame:
			err = cc.onSettings(f)
		case *http2.WindowUpdateFrame:
			err = cc.onWindowUpdate(f)
		case *http2.RSTStreamFrame:
			err = cc.onRST(f)
		case *http2.PingFrame:
			err = cc.onPing(f)
		case *http2.GoAwayFrame:
			cc.onGoAway(f)
		case *http2.PushPromiseFrame: // push was refused in our SETTINGS (RFC 9113 §6.6, §8.4)
			err = fmt.Errorf("PUSH_PROMISE of stream %d on stream %d, push refused: %w", f.PromiseID, f.StreamID, http2.ConnectionError(http2.ErrCodeProtocol))
		}
		if err != nil {
			return cc.connError(err)
		}
	}
}

// connError sends GOAWAY for a connection error found here, and returns err.
func (cc *clientConn) connError(err error) error {
	var ce http2.ConnectionError
	if errors.As(err, &ce) {
		cc.write(func(b []byte) []byte {
			b = appendFrameHeader(b, 8, ftGoAway, 0, 0)
			b = append(b, 0, 0, 0, 0)
			return append(b, byte(ce>>24), byte(ce>>16), byte(ce>>8), byte(ce))
		})
	}
	return err
}

// streamError resets stream id with code, failing it with err. A stream the client never
// opened is not reset (RST_STREAM on an idle stream is itself a connection error, RFC 9113
// §6.4): a frame for it is a connection error PROTOCOL_ERROR (§5.1), returned.
func (cc *clientConn) streamError(id uint32, code http2.ErrCode, err error) error {
	cc.mu.Lock()
	cs := cc.streams[id]
	if cs == nil {
		idle := cc.idleLocked(id)
		cc.mu.Unlock()
		if idle {
			return idleStreamError(fmt.Sprintf("stream error %v", code), id)
		}
		cc.write(func(b []byte) []byte { return appendRST(b, id, code) })
		return nil
	}
	cs.resetLocked(err, code)
	cc.mu.Unlock()
	cc.sendResets()
	return nil
}

// streamForLocked returns the open stream id, nil for one that ended; a frame (of type typ)
// for a stream the client never opened is a connection error.
func (cc *clientConn) streamForLocked(typ http2.FrameType, id uint32) (*clientStream, error) {
	cs := cc.streams[id]
	if cs == nil && cc.idleLocked(id) {
		return nil, idleStreamError(typ.String(), id)
	}
	return cs, nil
}

// idleLocked reports whether stream id is one the client never opened: an odd id it has not
// reached, or any even one (server-initiated: push is refused, so there are none).
func (cc *clientConn) idleLocked(id uint32) bool {
	return id%2 == 0 || id >= cc.nextID
}

// idleStreamError is the connection error PROTOCOL_ERROR for what (a frame type, a stream
// error) on idle stream id (RFC 9113 §5.1).
func idleStreamError(what string, id uint32) error {
	kind := "idle"
	if id%2 == 0 {
		kind = "server-initiated"
	}
	return fmt.Errorf("%s on %s stream %d: %w", what, kind, id, http2.ConnectionError(http2.ErrCodeProtocol))
}

func (cc *clientConn) onHeaders(f *http2.MetaHeadersFrame) error {
	cc.mu.Lock()
	cs, err := cc.streamForLocked(f.Type, f.StreamID)
	if cs == nil || err != nil {
		cc.mu.Unlock()
		return err
	}
	if cs.remoteDone {
		cc.mu.Unlock()
		cc.streamError(f.StreamID, http2.ErrCodeStreamClosed, http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeStreamClosed})
		return nil
	}
	var serr error
	if f.Truncated { // the Framer dropped fields past MAX_HEADER_LIST_SIZE: not a head to hand on
		serr = errResponseHeaderListSize
	} else if !cs.headDone {
		serr = cs.onHeadLocked(f)
	} else {
		serr = cs.onTrailersLocked(f)
	}
	cc.mu.Unlock()
	if serr != nil {
		cc.streamError(f.StreamID, http2.ErrCodeProtocol, fmt.Errorf("%w: %w", ErrMalformedResponse, serr))
	}
	return nil
}

// onHeadLocked takes the response head (1xx heads are passed over).
func (cs *clientStream) onHeadLocked(f *http2.MetaHeadersFrame) error {
	status := f.PseudoValue("status")
	code, err := strconv.Atoi(status)
	if len(status) != 3 || err != nil || code < 100 {
		return fmt.Errorf("http2: malformed response :status %q", status)
	}
	if code < 200 {
		if code == 101 || f.StreamEnded() {
			return fmt.Errorf("http2: unexpected %d response", code)
		}
		for _, hf := range f.Fields { // bounded together, as x/net's Transport had them
			cs.interim += int64(hf.Size())
		}
		if cs.interim > maxHeaderListSize {
			return errors.New("http2: 1xx responses larger than the header list limit")
		}
		return nil // interim: the final head follows
	}
	regular := f.RegularFields()
	h := make(http.Header, len(regular))
	for _, hf := range regular {
		k := textproto.CanonicalMIMEHeaderKey(hf.Name)
		h[k] = append(h[k], hf.Value)
	}
	resp := &http.Response{
		Status: status + " " + http.StatusText(code), StatusCode: code,
		Proto: "HTTP/2.0", ProtoMajor: 2, Header: h, Body: cs, Request: cs.req, ContentLength: -1,
	}
	cs.remain = -1
	if vs := h["Content-Length"]; len(vs) > 0 {
		n, ok := contentLength(vs)
		if !ok { // RFC 9110 §8.6, as the HTTP/1.1 codec has it
			return fmt.Errorf("http2: invalid or conflicting content-length %q", vs)
		}
		resp.ContentLength = n
		if cs.req.Method != "HEAD" {
			cs.remain = n
		}
	}
	if f.StreamEnded() {
		if cs.req.Method != "HEAD" {
			resp.ContentLength = 0
		}
		if cs.remain > 0 {
			return fmt.Errorf("http2: response with content-length %d ended with its head", cs.remain)
		}
		cs.remoteDone = true
		cs.endLocked()
	}
	cs.resp = resp
	cs.headDone = true
	close(cs.head)
	return nil
}

// contentLength is the length the content-length fields vs give: each a value
// h1.ParseLengthList takes (a decimal number or a list of identical ones), all the same (a
// repeated field is accepted when identical).
func contentLength(vs []string) (int64, bool) {
	n := int64(-1)
	for _, v := range vs {
		m, ok := h1.ParseLengthList([]byte(v)) // not copied: it only reads v
		if !ok || n >= 0 && m != n {
			return 0, false
		}
		n = m
	}
	return n, true
}

// onTrailersLocked takes the response trailers, which end the stream.
func (cs *clientStream) onTrailersLocked(f *http2.MetaHeadersFrame) error {
	if !f.StreamEnded() {
		return errors.New("http2: response trailers without END_STREAM")
	}
	if len(f.PseudoFields()) > 0 { // a second final head, or 1xx, after the head (RFC 9113 §8.1)
		return errors.New("http2: pseudo-field in response trailers")
	}
	if cs.remain > 0 {
		return fmt.Errorf("http2: response body ended %d bytes short of its content-length", cs.remain)
	}
	regular := f.RegularFields()
	tr := make(http.Header, len(regular))
	for _, hf := range regular {
		k := textproto.CanonicalMIMEHeaderKey(hf.Name)
		tr[k] = append(tr[k], hf.Value)
	}
	cs.resp.Trailer = tr
	cs.remoteDone = true
	cs.endLocked()
	cs.notify()
	return nil
}

// errResponseHeaderListSize fails a stream whose response head or trailers were larger than
// the SETTINGS_MAX_HEADER_LIST_SIZE the client sent.
var errResponseHeaderListSize = errors.New("http2: response header list larger than the client's limit")

func (cc *clientConn) onData(f *http2.DataFrame) error {
	n := int64(f.Length) // padding included: it counts against the windows
	data := f.Data()
	cc.mu.Lock()
	if n > cc.recvWindow {
		cc.mu.Unlock()
		return http2.ConnectionError(http2.ErrCodeFlowControl)
	}
	cc.recvWindow -= n
	cs, err := cc.streamForLocked(f.Type, f.StreamID)
	if cs == nil || cs.remoteDone || err != nil {
		// A stream that ended (reset by the client): its DATA goes back to the window.
		cc.connUnsent += n
		incr := cc.connUpdateLocked()
		cc.mu.Unlock()
		if incr > 0 {
			cc.write(func(b []byte) []byte { return appendWindowUpdate(b, 0, incr) })
		}
		if cs != nil && err == nil {
			cc.streamError(f.StreamID, http2.ErrCodeStreamClosed, http2.StreamError{StreamID: f.StreamID, Code: http2.ErrCodeStreamClosed})
		}
		return err
	}
	var serr error
	var code http2.ErrCode
	switch {
	case !cs.headDone:
		serr, code = errors.New("http2: DATA before the response head"), http2.ErrCodeProtocol
	case len(data) > 0 && cs.req.Method == "HEAD": // a HEAD response has no content (RFC 9110 §9.3.2), as x/net had it
		serr, code = errors.New("http2: DATA on a response to HEAD"), http2.ErrCodeProtocol
	case n > cs.recvWindow:
		serr, code = errors.New("http2: DATA beyond the stream window"), http2.ErrCodeFlowControl
	case cs.remain >= 0 && int64(len(data)) > cs.remain:
		serr, code = errors.New("http2: response body longer than its content-length"), http2.ErrCodeProtocol
	case f.StreamEnded() && cs.remain > int64(len(data)):
		serr, code = fmt.Errorf("http2: response body ended %d bytes short of its content-length", cs.remain-int64(len(data))), http2.ErrCodeProtocol
	}
	if serr != nil {
		cc.connUnsent += n
		cc.mu.Unlock()
		if code == http2.ErrCodeProtocol { // the content is malformed
			serr = fmt.Errorf("%w: %w", ErrMalformedResponse, serr)
		} else { // a window overrun: the frames are
			serr = fmt.Errorf("%w: %w", ErrProtocol, serr)
		}
		cc.streamError(f.StreamID, code, serr)
		return nil
	}
	cs.recvWindow -= n
	if cs.remain >= 0 {
		cs.remain -= int64(len(data))
	}
	if pad := n - int64(len(data)); pad > 0 {
		cc.connUnsent += pad
		cs.unsent += pad
	}
	cs.growBufLocked(len(data)) // bodybuf.go
	cs.buf = append(cs.buf, data...)
	if f.StreamEnded() {
		cs.remoteDone = true
		cs.endLocked()
	}
	cs.notify()
	cc.mu.Unlock()
	return nil
}

func (cc *clientConn) onSettings(f *http2.SettingsFrame) error {
	if f.IsAck() {
		return nil
	}
	var table uint32
	hasTable := false
	cc.mu.Lock()
	seenMax := false
	err := f.ForeachSetting(func(s http2.Setting) error {
		if err := s.Valid(); err != nil {
			return err
		}
		switch s.ID {
		case http2.SettingMaxConcurrentStreams:
			cc.maxStreams, seenMax = s.Val, true
		case http2.SettingInitialWindowSize:
			delta := int64(s.Val) - cc.peerInitWindow
			for _, cs := range cc.streams {
				if cs.sendWindow += delta; cs.sendWindow > math.MaxInt32 {
					return http2.ConnectionError(http2.ErrCodeFlowControl)
				}
			}
			cc.peerInitWindow = int64(s.Val)
			cc.cond.Broadcast()
		case http2.SettingMaxFrameSize:
			cc.peerMaxFrame = s.Val
		case http2.SettingMaxHeaderListSize:
			cc.peerMaxList = s.Val
		case http2.SettingHeaderTableSize:
			table, hasTable = s.Val, true
		}
		return nil
	})
	first := !cc.seenSettings
	if err != nil {
		// The connection ends; the read loop closes settled when these were the first.
		cc.mu.Unlock()
		return err
	}
	if first && !seenMax {
		cc.maxStreams = defaultMaxStreams
	}
	cc.seenSettings = true
	cc.limit.Store(int64(cc.maxStreams))
	cc.mu.Unlock()
	cc.wmu.Lock()
	if hasTable {
		cc.henc.SetMaxDynamicTableSizeLimit(table)
	}
	cc.writeLocked(appendFrameHeader(cc.wbuf[:0], 0, ftSettings, flagAck, 0))
	cc.wmu.Unlock()
	if first {
		close(cc.settled)
	}
	return nil
}

func (cc *clientConn) onWindowUpdate(f *http2.WindowUpdateFrame) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	incr := int64(f.Increment)
	if f.StreamID == 0 {
		if cc.sendWindow += incr; cc.sendWindow > math.MaxInt32 {
			return http2.ConnectionError(http2.ErrCodeFlowControl)
		}
		cc.cond.Broadcast()
		return nil
	}
	cs, err := cc.streamForLocked(f.Type, f.StreamID)
	if cs == nil || err != nil {
		return err
	}
	if cs.sendWindow += incr; cs.sendWindow > math.MaxInt32 {
		cs.resetLocked(fmt.Errorf("%w: stream window past 2^31-1: %w", ErrProtocol, http2.StreamError{StreamID: cs.id, Code: http2.ErrCodeFlowControl}), http2.ErrCodeFlowControl)
		go cc.sendResets() // not under mu
		return nil
	}
	cc.cond.Broadcast()
	return nil
}

// onRST ends a stream the backend reset: REFUSED_STREAM means it was not processed. A reset
// after the whole response only stops the request body.
func (cc *clientConn) onRST(f *http2.RSTStreamFrame) error {
	cc.mu.Lock()
	defer cc.mu.Unlock()
	if f.ErrCode == http2.ErrCodeRefusedStream {
		cc.facts.refused++
	} else {
		cc.facts.resets++
	}
	cs, err := cc.streamForLocked(f.Type, f.StreamID)
	if cs == nil || err != nil {
		return err
	}
	delete(cc.streams, cs.id)
	if cs.remoteDone && f.ErrCode == http2.ErrCodeNo {
		cs.reset = true // the request body need not be sent further (RFC 9113 §8.1)
		cc.cond.Broadcast()
		return nil
	}
	var e error = http2.StreamError{StreamID: cs.id, Code: f.ErrCode, Cause: errFromPeer}
	if f.ErrCode == http2.ErrCodeRefusedStream {
		e = ErrUnprocessed
	}
	cs.abortLocked(e)
	cc.cond.Broadcast()
	return nil
}

func (cc *clientConn) onPing(f *http2.PingFrame) error {
	if f.IsAck() {
		cc.mu.Lock()
		if ch, ok := cc.pings[f.Data]; ok {
			close(ch)
			delete(cc.pings, f.Data)
		}
		cc.mu.Unlock()
		return nil
	}
	data := f.Data
	return cc.write(func(b []byte) []byte {
		return append(appendFrameHeader(b, 8, ftPing, flagAck, 0), data[:]...)
	})
}

// onGoAway stops new streams; those above the last-stream-id were not processed.
func (cc *clientConn) onGoAway(f *http2.GoAwayFrame) {
	cc.mu.Lock()
	if !cc.goAway || f.LastStreamID < cc.goAwayLast {
		cc.goAwayLast = f.LastStreamID
	}
	cc.goAway = true
	cc.facts.goAway, cc.facts.goAwayCode, cc.facts.goAwayLast = true, f.ErrCode, f.LastStreamID
	for id, cs := range cc.streams {
		if id > cc.goAwayLast {
			delete(cc.streams, id)
			cs.abortLocked(ErrUnprocessed)
		}
	}
	cc.cond.Broadcast()
	cc.mu.Unlock()
	cc.markDead()
}
