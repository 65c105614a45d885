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
	"bytes"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
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
	flagPadded     = 0x8
	flagPriority   = 0x20
)

// h2Preface is what an HTTP/2 client sends first (RFC 9113 §3.4).
const h2Preface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"

// Limits the watch enforces: names used in logs and in sluice_http2_limit_hits_total.
const (
	LimitResets        = "rapid_reset"
	LimitControlFrames = "control_frame_flood"
	LimitEmptyFrames   = "empty_frame_flood"
	LimitContinuations = "continuation_flood"
	// LimitHeaderList: a header block decoded to more than the library accepts (an HPACK
	// bomb: a few bytes that index a large table entry many times). The library answers
	// the stream 431 on its own; the watch, decoding the same blocks, counts and logs it.
	// The connection stays.
	LimitHeaderList = "header_list_too_large"
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
	br  *bufio.Reader // the client's bytes: those buffered before HTTP/2 began, then Conn's
	lim h2Limits
	now func() time.Time

	// Read side, used by the library's one reader goroutine.
	in                     inScan
	winStart               time.Time
	resets, control, empty int
	conts                  int // CONTINUATION frames of the header block in progress
	fail                   http2.ErrCode
	failed                 bool
	hit                    string // the limit passed, for onLimit
	hitCount               int

	// dmu serializes deadline changes and the close: the library sets deadlines from its
	// writer goroutines while another closes, and under TLS both reach the socket's
	// netio.Conn, whose deadline bookkeeping is not safe for concurrent use.
	dmu sync.Mutex

	// Write side.
	wmu      sync.Mutex
	out      frameScan
	wto      time.Duration // the listener's write_timeout: each write must progress within it
	wdl      time.Time     // the write deadline set on Conn (zero: none)
	onGoAway func(lastStream uint32, code http2.ErrCode)
	onLimit  func(limit string, count int, closing bool)
}

func newH2Wire(nc net.Conn, pre []byte, lim h2Limits, maxHeaderList uint32) *h2Wire {
	w := &h2Wire{Conn: nc, lim: lim, now: time.Now}
	var src io.Reader = nc
	if len(pre) > 0 {
		src = io.MultiReader(bytes.NewReader(pre), nc)
	}
	w.br = bufio.NewReaderSize(src, 16<<10)
	w.in.w = w
	w.in.skip = len(h2Preface)
	w.in.dec = hpack.NewDecoder(4096, w.in.field) // the library's table size (its default)
	w.in.dec.SetMaxStringLength(int(maxHeaderList))
	w.in.maxList = int(maxHeaderList)
	return w
}

// Read reads for the library, watching the client's frames. When a frame breaks a limit
// or a rule, the bytes before it are returned and the next Read fails with the
// ConnectionError that makes the library send GOAWAY: the frame never reaches it.
func (w *h2Wire) Read(p []byte) (int, error) {
	if w.failed {
		return 0, http2.ConnectionError(w.fail)
	}
	if w.in.atBoundary() {
		w.fixSettings()
	}
	n, err := w.br.Read(p)
	if n > 0 {
		if now := w.now(); now.Sub(w.winStart) >= time.Second {
			w.winStart, w.resets, w.control, w.empty = now, 0, 0, 0
		}
		if cut := w.in.scan(p[:n]); cut >= 0 {
			n, w.failed = cut, true
			if w.hit != "" && w.onLimit != nil {
				w.onLimit(w.hit, w.hitCount, true)
			}
			if n == 0 {
				return 0, http2.ConnectionError(w.fail)
			}
		}
	}
	return n, err
}

// fixSettings rewrites, in the read buffer, a SETTINGS frame that names a setting twice:
// the library refuses those (PROTOCOL_ERROR), while RFC 9113 §6.5.3 says the values are
// processed in order, so the last one counts. The earlier duplicates get ids no setting has,
// which the library ignores as it must ignore unknown settings.
func (w *h2Wire) fixSettings() {
	h, err := w.br.Peek(9) // no frame is shorter: the library's read waits for as much
	if err != nil {
		return
	}
	length := int(h[0])<<16 | int(h[1])<<8 | int(h[2])
	if h[3] != frameSettings || h[4]&flagAck != 0 || length == 0 || length%6 != 0 || length > 60 {
		return
	}
	f, err := w.br.Peek(9 + length)
	if err != nil {
		return
	}
	pay := f[9:]
	unknown := uint16(0xf000)
	for i := 0; i < len(pay); i += 6 {
		for j := i + 6; j < len(pay); j += 6 {
			if pay[i] == pay[j] && pay[i+1] == pay[j+1] {
				binary.BigEndian.PutUint16(pay[i:], unknown)
				unknown++
				break
			}
		}
	}
}

// inScan follows the client's frames (frame headers, and the header blocks, which it
// decodes with its own HPACK decoder: the library answers a request with a connection-
// specific field 400 where RFC 9113 §8.2.2 asks for a stream error, so the watch finds
// such fields itself and ends the connection with PROTOCOL_ERROR, as §5.4.1 permits).
type inScan struct {
	w     *h2Wire
	skip  int
	hdr   [9]byte
	hn    int
	left  int
	typ   byte
	flags byte
	start int // where the current frame began in the chunk being scanned (<0: before it)
	cut   int // -1, or where to cut the chunk

	dec       *hpack.Decoder
	decBroken bool   // the decoder failed: the library will say why
	bad       string // a forbidden field seen in the header block in progress
	listSize  int    // the decoded size of the header block in progress (RFC 9113 §6.5.2)
	maxList   int    // the library's bound on it
	prefix    int    // HEADERS bytes before the fragment (pad length, priority)
	padded    bool   // the pad length byte is still to come
	frag      int    // fragment bytes left in this frame
}

func (s *inScan) atBoundary() bool { return s.skip == 0 && s.hn == 0 && s.left == 0 }

// scan passes one chunk of client bytes; it returns where to cut it, or -1.
func (s *inScan) scan(p []byte) int {
	s.cut, s.start = -1, -s.hn
	i := 0
	for i < len(p) && s.cut < 0 {
		switch {
		case s.skip > 0:
			n := min(s.skip, len(p)-i)
			s.skip -= n
			i += n
			s.start = i
		case s.left > 0:
			n := min(s.left, len(p)-i)
			s.payload(p[i : i+n])
			s.left -= n
			i += n
			if s.left == 0 {
				s.frameEnd()
				s.start = i
			}
		default:
			n := copy(s.hdr[s.hn:], p[i:])
			s.hn += n
			i += n
			if s.hn < len(s.hdr) {
				break
			}
			s.hn = 0
			s.left = int(s.hdr[0])<<16 | int(s.hdr[1])<<8 | int(s.hdr[2])
			s.typ, s.flags = s.hdr[3], s.hdr[4]
			s.w.inbound(s, s.left)
			if s.cut < 0 && s.left == 0 {
				s.frameEnd()
				s.start = i
			}
		}
	}
	return s.cut
}

// stop cuts the chunk before the current frame and makes the connection fail with code.
func (s *inScan) stop(code http2.ErrCode) {
	s.cut = max(s.start, 0)
	s.w.fail = code
}

// payload passes payload bytes of the current frame: header block fragments go to the
// decoder.
func (s *inScan) payload(b []byte) {
	if s.typ != frameHeaders && s.typ != frameContinuation {
		return
	}
	for len(b) > 0 {
		if s.prefix > 0 {
			if s.padded {
				s.padded = false
				s.frag -= int(b[0])
			}
			s.prefix--
			b = b[1:]
			continue
		}
		n := min(max(s.frag, 0), len(b))
		if n > 0 && !s.decBroken {
			if _, err := s.dec.Write(b[:n]); err != nil {
				s.decBroken = true
			}
		}
		s.frag -= n
		b = b[len(b):] // the rest is padding
	}
}

// frameEnd runs when a frame's payload has passed: at the end of a header block, a
// forbidden field found in it ends the connection before the block reaches the library.
func (s *inScan) frameEnd() {
	if (s.typ != frameHeaders && s.typ != frameContinuation) || s.flags&flagEndHeaders == 0 {
		return
	}
	if !s.decBroken && s.dec.Close() != nil {
		s.decBroken = true
	}
	if s.listSize > s.maxList && s.w.onLimit != nil {
		s.w.onLimit(LimitHeaderList, s.listSize, false)
	}
	s.listSize = 0
	if s.bad != "" {
		s.w.hit, s.w.hitCount = "", 0
		s.bad = ""
		s.stop(http2.ErrCodeProtocol)
	}
}

// field checks one decoded request field (RFC 9113 §8.2.2).
func (s *inScan) field(f hpack.HeaderField) {
	s.listSize += len(f.Name) + len(f.Value) + 32
	switch f.Name {
	case "connection", "proxy-connection", "keep-alive", "transfer-encoding", "upgrade":
		s.bad = f.Name
	case "te":
		if f.Value != "trailers" {
			s.bad = f.Name
		}
	}
}

// inbound checks one client frame header against the limits.
func (w *h2Wire) inbound(s *inScan, length int) {
	empty := false
	switch s.typ {
	case frameData:
		empty = length == 0 && s.flags&flagEndStream == 0
	case frameHeaders:
		w.conts = 0
		s.bad, s.listSize = "", 0
		s.prefix, s.padded, s.frag = 0, s.flags&flagPadded != 0, length
		if s.padded {
			s.prefix++
		}
		if s.flags&flagPriority != 0 {
			s.prefix += 5
		}
		s.frag -= s.prefix
		empty = length == 0 && s.flags&flagEndHeaders == 0
	case frameContinuation:
		s.prefix, s.padded, s.frag = 0, false, length
		w.conts++
		if w.conts > w.lim.continuations {
			w.limitHit(s, LimitContinuations, w.conts)
			return
		}
		empty = length == 0 && s.flags&flagEndHeaders == 0
	case frameRSTStream:
		if w.resets++; w.resets > w.lim.resets {
			w.limitHit(s, LimitResets, w.resets)
			return
		}
	case framePing, frameSettings:
		if s.flags&flagAck == 0 {
			if w.control++; w.control > w.lim.control {
				w.limitHit(s, LimitControlFrames, w.control)
				return
			}
		}
	}
	if empty {
		if w.empty++; w.empty > w.lim.empty {
			w.limitHit(s, LimitEmptyFrames, w.empty)
		}
	}
}

func (w *h2Wire) limitHit(s *inScan, limit string, count int) {
	w.hit, w.hitCount = limit, count
	s.stop(http2.ErrCodeEnhanceYourCalm)
}

func (w *h2Wire) SetDeadline(t time.Time) error {
	w.dmu.Lock()
	defer w.dmu.Unlock()
	return w.Conn.SetDeadline(t)
}

func (w *h2Wire) SetReadDeadline(t time.Time) error {
	w.dmu.Lock()
	defer w.dmu.Unlock()
	return w.Conn.SetReadDeadline(t)
}

func (w *h2Wire) SetWriteDeadline(t time.Time) error {
	w.dmu.Lock()
	defer w.dmu.Unlock()
	return w.Conn.SetWriteDeadline(t)
}

// Close closes the connection (over TLS, sending close_notify under a write deadline).
func (w *h2Wire) Close() error {
	w.dmu.Lock()
	defer w.dmu.Unlock()
	return w.Conn.Close()
}

// Write writes the library's frames, noting each GOAWAY.
func (w *h2Wire) Write(p []byte) (int, error) {
	w.wmu.Lock()
	defer w.wmu.Unlock()
	w.out.scan(p, outbound, w.goAwaySeen)
	w.armWrite()
	return w.Conn.Write(p)
}

// armWrite bounds the next write by the write timeout. The library's own per-write
// deadline (http2.Server.WriteByteTimeout) set and cleared a deadline around every flush:
// two deadline changes per write. Here a deadline is moved only when less than half the
// timeout is left, so a write gets between half and all of write_timeout to make progress,
// and most writes change nothing. The caller holds wmu.
func (w *h2Wire) armWrite() {
	if w.wto <= 0 {
		return
	}
	now := time.Now()
	if w.wdl.Sub(now) >= w.wto/2 {
		return
	}
	w.wdl = now.Add(w.wto)
	w.SetWriteDeadline(w.wdl)
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
			w.armWrite()
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
