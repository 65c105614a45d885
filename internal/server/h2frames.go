package server

// The frame watch.
//
// golang.org/x/net/http2 runs the HTTP/2 connection (see h2.go), and enforces some limits
// on its own: streams above SETTINGS_MAX_CONCURRENT_STREAMS, header lists above the
// advertised size, queued control frames, handlers that a rapid reset would pile up. It
// does not bound frames that are cheap to send and cost the server work or memory while
// staying legal one by one: PING and SETTINGS floods (each is answered), empty DATA and
// CONTINUATION frames, RST_STREAM storms under the stream limit, a header block cut into
// thousands of CONTINUATION frames. And it tells nobody when it sends a GOAWAY.
//
// So the connection handed to the library is wrapped (h2Wire): every byte it reads from the
// client and writes to it passes a frame scanner that follows the frame headers (9 bytes
// each, payloads skipped) without copying. Inbound, per-second counters and the
// CONTINUATION count of the header block in progress are checked against the listener's
// limits; a client past one gets http2.ConnectionError(ENHANCE_YOUR_CALM) from the next
// read, which the library answers as it answers its own protocol errors: a GOAWAY with that
// code and the last stream id it processed, then the close. Outbound, each GOAWAY is seen
// with its code and last stream id, whoever decided it, and counted and logged. The drain's
// first GOAWAY (stream id 2^31-1) is written by the watch itself, between two of the
// library's frames (drainStep1).

import (
	"bufio"
	"crypto/tls"
	"encoding/binary"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// HTTP/2 frame types and flags that the watch looks at (RFC 9113 §6).
const (
	frameData         = 0x0
	frameHeaders      = 0x1
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	framePing         = 0x6
	frameGoAway       = 0x7
	frameContinuation = 0x9

	flagEndStream  = 0x1
	flagAck        = 0x1
	flagEndHeaders = 0x4
)

// h2Preface is what an HTTP/2 client sends first (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Limits the watch enforces: names used in logs and in sluice_http2_limit_hits_total.
const (
	LimitResets        = "rapid_reset"
	LimitControlFrames = "control_frame_flood"
	LimitEmptyFrames   = "empty_frame_flood"
	LimitContinuations = "continuation_flood"
)

// frameScan follows frame boundaries in a byte stream.
type frameScan struct {
	skip  int     // bytes to pass before the first frame header (the client preface)
	hdr   [9]byte // the frame header being assembled
	hn    int     // bytes of hdr filled
	left  int     // payload bytes of the current frame still to pass
	want  int     // payload bytes of the current frame to keep in pay (GOAWAY)
	pay   [8]byte
	pn    int
	typ   byte
	flags byte
}

// atBoundary reports whether the stream stands between two frames.
func (s *frameScan) atBoundary() bool { return s.skip == 0 && s.hn == 0 && s.left == 0 }

// scan passes p through the scanner, calling head for each frame header and payload for
// the kept payload bytes of a frame (want set by head) once they are all there.
func (s *frameScan) scan(p []byte, head func(s *frameScan, length int), payload func(s *frameScan)) {
	for len(p) > 0 {
		switch {
		case s.skip > 0:
			n := min(s.skip, len(p))
			s.skip -= n
			p = p[n:]
		case s.left > 0:
			n := min(s.left, len(p))
			if k := min(s.want-s.pn, n); k > 0 {
				s.pn += copy(s.pay[s.pn:s.pn+k], p[:k])
				if s.pn == s.want && payload != nil {
					payload(s)
				}
			}
			s.left -= n
			p = p[n:]
		default:
			n := copy(s.hdr[s.hn:], p)
			s.hn += n
			p = p[n:]
			if s.hn < len(s.hdr) {
				return
			}
			s.hn = 0
			length := int(s.hdr[0])<<16 | int(s.hdr[1])<<8 | int(s.hdr[2])
			s.typ, s.flags = s.hdr[3], s.hdr[4]
			s.left, s.want, s.pn = length, 0, 0
			head(s, length)
		}
	}
}

// h2Limits are the per-connection limits of the watch (from H2Settings).
type h2Limits struct {
	resets, control, empty, continuations int
}

// h2Wire is the client connection as the HTTP/2 library sees it (see the top of this file).
type h2Wire struct {
	net.Conn
	br  *bufio.Reader // reads from Conn, after pre
	pre []byte        // bytes the connection had buffered before HTTP/2 began
	lim h2Limits
	now func() time.Time

	// Read side, used by the library's one reader goroutine.
	in                     frameScan
	winStart               time.Time
	resets, control, empty int
	conts                  int    // CONTINUATION frames of the header block in progress
	hit                    string // a limit passed: the next Read fails
	hitCount               int

	// Write side.
	wmu      sync.Mutex
	out      frameScan
	onGoAway func(lastStream uint32, code http2.ErrCode)
	onLimit  func(limit string, count int)
}

func newH2Wire(nc net.Conn, pre []byte, lim h2Limits) *h2Wire {
	w := &h2Wire{Conn: nc, pre: pre, lim: lim, now: time.Now}
	w.br = bufio.NewReaderSize(nc, 16<<10)
	w.in.skip = len(h2Preface)
	return w
}

// Read reads for the library, watching the client's frames.
func (w *h2Wire) Read(p []byte) (int, error) {
	if w.hit != "" {
		return 0, http2.ConnectionError(http2.ErrCodeEnhanceYourCalm)
	}
	var n int
	var err error
	if len(w.pre) > 0 {
		n = copy(p, w.pre)
		w.pre = w.pre[n:]
	} else {
		n, err = w.br.Read(p)
	}
	if n > 0 {
		if now := w.now(); now.Sub(w.winStart) >= time.Second {
			w.winStart, w.resets, w.control, w.empty = now, 0, 0, 0
		}
		w.in.scan(p[:n], w.inbound, nil)
		if w.hit != "" && w.onLimit != nil {
			w.onLimit(w.hit, w.hitCount)
		}
	}
	return n, err
}

// inbound checks one client frame header against the limits.
func (w *h2Wire) inbound(s *frameScan, length int) {
	if w.hit != "" {
		return
	}
	empty := false
	switch s.typ {
	case frameData:
		empty = length == 0 && s.flags&flagEndStream == 0
	case frameHeaders:
		w.conts = 0
		empty = length == 0 && s.flags&flagEndHeaders == 0
	case frameContinuation:
		w.conts++
		if w.conts > w.lim.continuations {
			w.hit, w.hitCount = LimitContinuations, w.conts
			return
		}
		empty = length == 0 && s.flags&flagEndHeaders == 0
	case frameRSTStream:
		if w.resets++; w.resets > w.lim.resets {
			w.hit, w.hitCount = LimitResets, w.resets
			return
		}
	case framePing, frameSettings:
		if s.flags&flagAck == 0 {
			if w.control++; w.control > w.lim.control {
				w.hit, w.hitCount = LimitControlFrames, w.control
				return
			}
		}
	}
	if empty {
		if w.empty++; w.empty > w.lim.empty {
			w.hit, w.hitCount = LimitEmptyFrames, w.empty
		}
	}
}

// Write writes the library's frames, noting each GOAWAY.
func (w *h2Wire) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.out.scan(p, outbound, w.goAwaySeen)
	return w.Conn.Write(p)
}

func outbound(s *frameScan, length int) {
	if s.typ == frameGoAway {
		s.want = min(length, 8)
	}
}

func (w *h2Wire) goAwaySeen(s *frameScan) {
	if s.want < 8 || w.onGoAway == nil {
		return
	}
	last := binary.BigEndian.Uint32(s.pay[:4]) & (1<<31 - 1)
	w.onGoAway(last, http2.ErrCode(binary.BigEndian.Uint32(s.pay[4:8])))
}

// drainStep1 writes the first GOAWAY of a graceful drain (last stream id 2^31-1, NO_ERROR)
// between two of the library's frames. It reports false when the library stood inside a
// frame for too long (the drain then goes on with the library's own GOAWAY alone).
func (w *h2Wire) drainStep1() bool {
	for range 20 {
		w.wmu.Lock()
		if w.out.atBoundary() {
			var f [17]byte
			f[2] = 8 // length
			f[3] = frameGoAway
			binary.BigEndian.PutUint32(f[9:], 1<<31-1)
			binary.BigEndian.PutUint32(f[13:], uint32(http2.ErrCodeNo))
			w.out.scan(f[:], outbound, w.goAwaySeen)
			_, err := w.Conn.Write(f[:])
			w.wmu.Unlock()
			return err == nil
		}
		w.wmu.Unlock()
		time.Sleep(5 * time.Millisecond)
	}
	return false
}

// h2TLSWire is an h2Wire over TLS: the library reads the session's state from it (it
// refuses TLS below 1.2 and the ciphers RFC 9113 §9.2.2 forbids) and sets Request.TLS.
type h2TLSWire struct {
	*h2Wire
	tc *tls.Conn
}

func (w h2TLSWire) ConnectionState() tls.ConnectionState { return w.tc.ConnectionState() }
