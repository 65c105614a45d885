package testutil

import (
	"bytes"
	"crypto/tls"
	"io"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// RacyH2Options configure a RacyH2 backend. Zero values turn a behaviour off.
type RacyH2Options struct {
	// TLS serves HTTP/2 over TLS (ALPN h2); nil serves h2c with prior knowledge.
	TLS *tls.Config
	// MaxConcurrentStreams is advertised in SETTINGS (0: not advertised, unlimited).
	MaxConcurrentStreams uint32
	// HeaderTableSize is advertised as SETTINGS_HEADER_TABLE_SIZE and enforced on the
	// decoder: a client that indexes beyond it breaks decoding (counted in HPACKErrors).
	// 0 advertises 0 (no dynamic table); -1 leaves the default 4096.
	HeaderTableSize int
	// GoAwayEvery: a connection sends GOAWAY after a random 2..GoAwayEvery streams arrived,
	// with a last-stream-id below streams in flight (those are never processed), and closes
	// once the streams at or below it were answered.
	GoAwayEvery int
	// RefusePercent: a stream that is not the first of its connection is refused
	// (RST_STREAM REFUSED_STREAM, never processed) with this probability.
	RefusePercent int
	// IdleClose: a connection without open streams for this long gets GOAWAY(NO_ERROR) with
	// its highest stream id and is closed.
	IdleClose time.Duration
	// Delay is the most a stream's processing takes (random 0..Delay), so streams overlap.
	Delay time.Duration
	// ResetAfter: a request whose id it accepts is processed, then its stream is reset
	// (RST_STREAM INTERNAL_ERROR) instead of answered.
	ResetAfter func(id string) bool
	// Silent: while set, the backend's first connection stops answering PINGs (and
	// everything else) but keeps the socket; later connections are served.
	Silent *atomic.Bool
	// PingDelay: PINGs are answered this late (the backend is busy, not gone).
	PingDelay time.Duration
	// LowerMaxStreams: when a connection's first stream arrives, it sends a second SETTINGS
	// frame lowering MAX_CONCURRENT_STREAMS to this (0: never), as a server shedding load
	// does. Then each limit (MaxConcurrentStreams, then this) is enforced once the client
	// acknowledged it: a stream opened while the limit's worth are open is refused
	// (REFUSED_STREAM) and counted in OverLimit.
	LowerMaxStreams uint32
}

// RacyH2 is an HTTP/2 backend written at the frame level (x/net http2.Framer) for the
// tests of the upstream HTTP/2 pool: it sends GOAWAY with a last-stream-id below streams in
// flight, refuses streams at random and closes idle connections, and counts per request id
// (header x-test-id) how often it processed each request. A stream it did not process (above
// its GOAWAY, refused) is never counted; a processed POST's body must be "body-<id>".
type RacyH2 struct {
	o  RacyH2Options
	ln net.Listener

	mu        sync.Mutex
	processed map[string]int
	conns     map[net.Conn]struct{}

	Accepted, GoAways, Refused, Unprocessed, IdleCloses, HPACKErrors, BadBodies, Pings atomic.Int64
	// PeakStreams is the most streams one connection had open at once.
	PeakStreams atomic.Int64
	// OverLimit counts the streams opened beyond an acknowledged MAX_CONCURRENT_STREAMS.
	OverLimit atomic.Int64
}

// NewRacyH2 starts a RacyH2 on 127.0.0.1 (port 0).
func NewRacyH2(o RacyH2Options) (*RacyH2, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	return ServeRacyH2(ln, o), nil
}

// ServeRacyH2 serves a RacyH2 on ln.
func ServeRacyH2(ln net.Listener, o RacyH2Options) *RacyH2 {
	if o.TLS != nil {
		o.TLS = o.TLS.Clone()
		o.TLS.NextProtos = []string{http2.NextProtoTLS}
		ln = tls.NewListener(ln, o.TLS)
	}
	b := &RacyH2{o: o, ln: ln, processed: map[string]int{}, conns: map[net.Conn]struct{}{}}
	go b.serve()
	return b
}

// Addr is the listening address.
func (b *RacyH2) Addr() string { return b.ln.Addr().String() }

// Processed is how often the request with id was processed.
func (b *RacyH2) Processed(id string) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.processed[id]
}

// Close stops listening and closes every connection.
func (b *RacyH2) Close() {
	b.ln.Close()
	b.mu.Lock()
	defer b.mu.Unlock()
	for c := range b.conns {
		c.Close()
	}
}

func (b *RacyH2) serve() {
	for {
		c, err := b.ln.Accept()
		if err != nil {
			return
		}
		first := b.Accepted.Add(1) == 1
		b.mu.Lock()
		b.conns[c] = struct{}{}
		b.mu.Unlock()
		go b.handle(c, first)
	}
}

// h2stream is a request being received.
type h2stream struct {
	id      string
	method  string
	body    bytes.Buffer
	doomed  bool // above the GOAWAY or refused: never processed
	started bool
}

// h2conn is one connection's state; the reading goroutine owns streams, wmu guards writes.
type h2conn struct {
	b       *RacyH2
	c       net.Conn
	fr      *http2.Framer
	wmu     sync.Mutex
	wclosed bool // the sending side was shut down (under wmu)
	streams map[uint32]*h2stream
	idleT   *time.Timer

	// mu orders the decisions on streams (process, doom) against closing.
	mu   sync.Mutex
	open int // streams being processed or received
	// live counts the streams the server has not ended, for PeakStreams: a stream stops
	// counting just before its last frame is written, since the client may open the next
	// stream as soon as that frame arrives (before open drops).
	live    int
	n       int    // streams arrived
	maxID   uint32 // the highest stream id arrived
	maxRun  uint32 // the highest stream id processed
	goAwayN int    // send GOAWAY at this stream count (0: never)
	last    uint32 // GOAWAY's last-stream-id, once sent
	sent    bool
	closed  bool
	// acks counts the client's SETTINGS ACKs; limit is the MAX_CONCURRENT_STREAMS it
	// acknowledged last (0: none).
	acks  int
	limit uint32
}

func (b *RacyH2) handle(c net.Conn, first bool) {
	defer func() {
		c.Close()
		b.mu.Lock()
		delete(b.conns, c)
		b.mu.Unlock()
	}()
	pre := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, pre); err != nil || string(pre) != http2.ClientPreface {
		return
	}
	hc := &h2conn{b: b, c: c, fr: http2.NewFramer(c, c), streams: map[uint32]*h2stream{}}
	tableSize := uint32(4096)
	if b.o.HeaderTableSize >= 0 {
		tableSize = uint32(b.o.HeaderTableSize)
	}
	dec := hpack.NewDecoder(tableSize, nil)
	dec.SetAllowedMaxDynamicTableSize(tableSize)
	hc.fr.ReadMetaHeaders = dec
	settings := []http2.Setting{{ID: http2.SettingHeaderTableSize, Val: tableSize}}
	if b.o.MaxConcurrentStreams > 0 {
		settings = append(settings, http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: b.o.MaxConcurrentStreams})
	}
	if b.o.GoAwayEvery >= 2 {
		hc.goAwayN = 2 + rand.IntN(b.o.GoAwayEvery-1)
	}
	hc.write(func() error { return hc.fr.WriteSettings(settings...) })
	if b.o.IdleClose > 0 {
		hc.idleT = time.AfterFunc(b.o.IdleClose, hc.idleClose)
		defer hc.idleT.Stop()
	}
	for {
		f, err := hc.fr.ReadFrame()
		if err != nil {
			if _, ok := err.(http2.StreamError); !ok {
				var ce http2.ConnectionError
				if asConnErr(err, &ce) && http2.ErrCode(ce) == http2.ErrCodeCompression {
					b.HPACKErrors.Add(1)
				}
			}
			return
		}
		if b.o.Silent != nil && b.o.Silent.Load() && first {
			continue
		}
		hc.frame(f)
	}
}

func asConnErr(err error, ce *http2.ConnectionError) bool {
	e, ok := err.(http2.ConnectionError)
	if ok {
		*ce = e
	}
	return ok
}

func (hc *h2conn) write(f func() error) {
	hc.wmu.Lock()
	defer hc.wmu.Unlock()
	// After shutdown, writes fail (the sending side is closed) and that is expected: closing
	// the socket then, with the client's bytes unread, would reset it, which shutdown avoids.
	if f() != nil && !hc.wclosed {
		hc.c.Close()
	}
}

func (hc *h2conn) frame(f http2.Frame) {
	switch f := f.(type) {
	case *http2.SettingsFrame:
		if !f.IsAck() {
			hc.write(hc.fr.WriteSettingsAck)
			return
		}
		if hc.b.o.LowerMaxStreams == 0 {
			return // limits are enforced only with LowerMaxStreams
		}
		hc.mu.Lock()
		// The ACKs come in the order of the SETTINGS: the first is for the initial one.
		if hc.acks++; hc.acks == 1 {
			hc.limit = hc.b.o.MaxConcurrentStreams
		} else {
			hc.limit = hc.b.o.LowerMaxStreams
		}
		hc.mu.Unlock()
	case *http2.PingFrame:
		if !f.IsAck() {
			hc.b.Pings.Add(1)
			ack := func() { hc.write(func() error { return hc.fr.WritePing(true, f.Data) }) }
			if d := hc.b.o.PingDelay; d > 0 {
				time.AfterFunc(d, ack)
				return
			}
			ack()
		}
	case *http2.MetaHeadersFrame:
		hc.headers(f)
	case *http2.DataFrame:
		if n := len(f.Data()); n > 0 {
			hc.write(func() error {
				if err := hc.fr.WriteWindowUpdate(0, uint32(n)); err != nil {
					return err
				}
				return hc.fr.WriteWindowUpdate(f.StreamID, uint32(n))
			})
		}
		s := hc.streams[f.StreamID]
		if s == nil {
			return
		}
		s.body.Write(f.Data())
		if f.StreamEnded() {
			hc.mu.Lock()
			hc.endLocked(f.StreamID, s)
			hc.mu.Unlock()
		}
	case *http2.RSTStreamFrame:
		if s := hc.streams[f.StreamID]; s != nil {
			delete(hc.streams, f.StreamID)
			hc.mu.Lock()
			hc.live--
			hc.doneLocked()
			hc.mu.Unlock()
		}
	}
}

func (hc *h2conn) headers(f *http2.MetaHeadersFrame) {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.n++
	hc.maxID = f.StreamID
	s := &h2stream{id: f.PseudoValue("x"), method: f.PseudoValue("method")}
	for _, h := range f.RegularFields() {
		if h.Name == "x-test-id" {
			s.id = h.Value
		}
	}
	if hc.limit > 0 && hc.live >= int(hc.limit) {
		hc.b.OverLimit.Add(1)
		hc.write(func() error { return hc.fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream) })
		return
	}
	if hc.n == 1 && hc.b.o.LowerMaxStreams > 0 {
		hc.write(func() error {
			return hc.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: hc.b.o.LowerMaxStreams})
		})
	}
	hc.streams[f.StreamID] = s
	hc.open++
	hc.live++
	if int64(hc.live) > hc.b.PeakStreams.Load() {
		hc.b.PeakStreams.Store(int64(hc.live))
	}
	if hc.idleT != nil {
		hc.idleT.Stop()
	}
	switch {
	case hc.closed || hc.sent && f.StreamID > hc.last:
		s.doomed = true
		hc.b.Unprocessed.Add(1)
	case hc.goAwayN > 0 && hc.n >= hc.goAwayN && !hc.sent:
		// The last-stream-id is below this stream and up to two before it, which are in
		// flight or done: those above it are not processed.
		back := uint32(2 * rand.IntN(min(hc.n, 3)))
		hc.last = 0
		if f.StreamID >= 2+back {
			hc.last = f.StreamID - 2 - back
		}
		// Never below a stream already processed, nor below the connection's first stream
		// (a server that refuses a new connection's first stream is down, not racing).
		hc.last = max(hc.last, hc.maxRun, 1)
		hc.sent = true
		hc.b.GoAways.Add(1)
		hc.write(func() error { return hc.fr.WriteGoAway(hc.last, http2.ErrCodeNo, nil) })
		for id, o := range hc.streams {
			if id > hc.last && !o.started && !o.doomed {
				o.doomed = true
				hc.b.Unprocessed.Add(1)
			}
		}
	case hc.n > 1 && rand.IntN(100) < hc.b.o.RefusePercent:
		s.doomed = true
		hc.b.Refused.Add(1)
		hc.write(func() error { return hc.fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream) })
		delete(hc.streams, f.StreamID)
		hc.live--
		hc.doneLocked()
		return
	}
	if f.StreamEnded() {
		hc.endLocked(f.StreamID, s)
	}
}

// endLocked processes stream id once its request is complete, unless it is doomed.
func (hc *h2conn) endLocked(id uint32, s *h2stream) {
	delete(hc.streams, id)
	if s.doomed {
		hc.live--
		hc.doneLocked()
		return
	}
	s.started = true
	hc.maxRun = max(hc.maxRun, id)
	b := hc.b
	b.mu.Lock()
	b.processed[s.id]++
	b.mu.Unlock()
	if s.method == "POST" && s.body.String() != "body-"+s.id {
		b.BadBodies.Add(1)
	}
	go func() {
		if b.o.Delay > 0 {
			time.Sleep(rand.N(b.o.Delay))
		}
		hc.mu.Lock()
		hc.live--
		hc.mu.Unlock()
		if b.o.ResetAfter != nil && b.o.ResetAfter(s.id) {
			hc.write(func() error { return hc.fr.WriteRSTStream(id, http2.ErrCodeInternal) })
			hc.done()
			return
		}
		body := []byte("ok " + s.id + " " + strconv.Itoa(s.body.Len()))
		hc.write(func() error {
			var hb bytes.Buffer
			enc := hpack.NewEncoder(&hb)
			enc.WriteField(hpack.HeaderField{Name: ":status", Value: "200"})
			enc.WriteField(hpack.HeaderField{Name: "content-length", Value: strconv.Itoa(len(body))})
			if err := hc.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: hb.Bytes(), EndHeaders: true}); err != nil {
				return err
			}
			return hc.fr.WriteData(id, true, body)
		})
		hc.done()
	}()
}

func (hc *h2conn) done() {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	hc.doneLocked()
}

// doneLocked notes that a stream ended; after a GOAWAY the connection closes with its last
// one, and an idle connection starts its idle-close timer.
func (hc *h2conn) doneLocked() {
	if hc.open--; hc.open > 0 {
		return
	}
	if hc.sent {
		// As servers do (Go's waits 1s), the connection lingers after its last stream, so
		// that streams the client sent before it read the GOAWAY are not met by a reset.
		hc.closed = true
		time.AfterFunc(50*time.Millisecond, hc.shutdown)
		return
	}
	if hc.idleT != nil {
		hc.idleT.Reset(hc.b.o.IdleClose)
	}
}

// idleClose sends GOAWAY(NO_ERROR) naming the highest stream seen and closes.
func (hc *h2conn) idleClose() {
	hc.mu.Lock()
	defer hc.mu.Unlock()
	if hc.open > 0 || hc.closed {
		return
	}
	hc.closed = true
	hc.b.IdleCloses.Add(1)
	hc.write(func() error { return hc.fr.WriteGoAway(hc.maxID, http2.ErrCodeNo, nil) })
	hc.shutdown()
}

// shutdown closes the sending side and keeps reading (the read loop discards) until the
// client closes, as servers do: closing a socket with unread bytes would reset it, and the
// reset would destroy the responses and GOAWAY still on their way to the client.
func (hc *h2conn) shutdown() {
	hc.wmu.Lock()
	defer hc.wmu.Unlock()
	if cw, ok := hc.c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		hc.wclosed = true
		time.AfterFunc(2*time.Second, func() { hc.c.Close() })
		return
	}
	hc.c.Close()
}

// Duplicates counts the request ids processed more than once.
func (b *RacyH2) Duplicates() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, c := range b.processed {
		if c > 1 {
			n++
		}
	}
	return n
}
