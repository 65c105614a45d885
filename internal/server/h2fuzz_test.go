package server

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sluice/internal/h1"
)

// fuzzHandler is a trivial handler that still exercises both directions of flow control
// and the trailers: "/echo" sends the request body back as it reads it, "/trailer" answers
// with a trailer, anything else reads the body and answers "ok". running counts the
// handlers in flight.
type fuzzHandler struct{ running *atomic.Int64 }

func (fuzzHandler) ServeH1(ex *Exchange) { ex.WriteError(ErrBodyTooLarge, "") }

func (f fuzzHandler) ServeH2(s *Stream) {
	f.running.Add(1)
	defer f.running.Add(-1)
	var h h1.Header
	buf := make([]byte, 4096)
	switch string(s.Req.Path) {
	case "/echo":
		s.WriteHead(200, nil, &h, h1.LengthUnknown)
		for {
			n, err := s.ReadBody(buf)
			if n > 0 {
				if _, werr := s.Write(buf[:n]); werr != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	case "/trailer":
		io.Copy(io.Discard, readerFunc(s.ReadBody))
		s.WriteHead(200, nil, &h, h1.LengthUnknown)
		s.Write([]byte("body"))
		var tr h1.Header
		tr.Add("grpc-status", "0")
		s.Finish(&tr)
	default:
		io.Copy(io.Discard, readerFunc(s.ReadBody))
		s.WriteHead(200, nil, &h, 2)
		s.Write([]byte("ok"))
	}
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// h2FuzzSeeds are frame sequences (written with x/net's Framer) sent after the preface and
// an empty SETTINGS frame: valid requests, and the malformed and adversarial cases RFC 9113
// and the CVEs name.
func h2FuzzSeeds() [][]byte {
	var seeds [][]byte
	var hb bytes.Buffer
	block := func(path string, extra ...hpack.HeaderField) []byte {
		hb.Reset()
		enc := hpack.NewEncoder(&hb) // a seed is a new connection: no shared table state
		for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: "POST"}, {Name: ":scheme", Value: "http"},
			{Name: ":authority", Value: "x"}, {Name: ":path", Value: path}}, extra...) {
			enc.WriteField(f)
		}
		return bytes.Clone(hb.Bytes())
	}
	seed := func(write func(fr *http2.Framer)) {
		var b bytes.Buffer
		fr := http2.NewFramer(&b, nil)
		fr.AllowIllegalWrites = true
		write(fr)
		seeds = append(seeds, b.Bytes())
	}
	raw := func(typ http2.FrameType, flags http2.Flags, id uint32, p []byte) func(fr *http2.Framer) {
		return func(fr *http2.Framer) { fr.WriteRawFrame(typ, flags, id, p) }
	}
	hdr := func(fr *http2.Framer, id uint32, path string, end bool) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block(path), EndStream: end, EndHeaders: true})
	}
	// Valid: a GET, a POST with a body, an echo, trailers both ways, a padded body.
	seed(func(fr *http2.Framer) { hdr(fr, 1, "/", true) })
	seed(func(fr *http2.Framer) {
		hdr(fr, 1, "/", false)
		fr.WriteData(1, false, []byte("hello"))
		fr.WriteData(1, true, []byte(" world"))
	})
	seed(func(fr *http2.Framer) {
		hdr(fr, 1, "/echo", false)
		fr.WriteData(1, false, bytes.Repeat([]byte("e"), 20000))
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x40, 1, 'x', 1, 'y'}, EndStream: true, EndHeaders: true})
	})
	seed(func(fr *http2.Framer) { hdr(fr, 1, "/trailer", true); hdr(fr, 3, "/echo", true) })
	seed(func(fr *http2.Framer) {
		hdr(fr, 1, "/", false)
		fr.WriteDataPadded(1, false, []byte("abc"), make([]byte, 200))
		fr.WriteDataPadded(1, true, nil, make([]byte, 255))
	})
	// Streams still open at the client's FIN: a request body waited for, a response
	// waiting for window.
	seed(func(fr *http2.Framer) { hdr(fr, 1, "/echo", false); fr.WriteData(1, false, []byte("part")) })
	seed(func(fr *http2.Framer) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
		hdr(fr, 1, "/echo", false)
		fr.WriteData(1, false, []byte("more than one byte"))
	})
	// A header block split over CONTINUATION frames; one interrupted by another frame; a
	// CONTINUATION without HEADERS.
	seed(func(fr *http2.Framer) {
		b := block("/", hpack.HeaderField{Name: "x-long", Value: strings.Repeat("v", 300)})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:10], EndStream: true})
		fr.WriteContinuation(1, false, b[10:100])
		fr.WriteContinuation(1, true, b[100:])
	})
	seed(func(fr *http2.Framer) {
		b := block("/")
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:3], EndStream: true})
		fr.WritePing(false, [8]byte{})
	})
	seed(raw(http2.FrameContinuation, http2.FlagContinuationEndHeaders, 1, block("/")))
	// HPACK errors: an index past the tables, a truncated block, a table size update in
	// the middle.
	seed(raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, 1, []byte{0xff, 0xff, 0xff, 0x7f}))
	seed(raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, 1, []byte{0x82, 0x40, 0x7f}))
	seed(raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersEndStream, 1, append(block("/"), 0x3f, 0xe1, 0x1f)))
	// Padding: longer than the payload, on HEADERS and DATA; a zero-length padded frame.
	seed(raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders|http2.FlagHeadersPadded, 1, append([]byte{200}, block("/")...)))
	seed(raw(http2.FrameHeaders, http2.FlagHeadersPadded|http2.FlagHeadersPriority, 1, []byte{0}))
	seed(func(fr *http2.Framer) {
		hdr(fr, 1, "/", false)
		fr.WriteRawFrame(http2.FrameData, http2.FlagDataPadded, 1, []byte{9, 1, 2})
		fr.WriteRawFrame(http2.FrameData, http2.FlagDataPadded, 1, nil)
	})
	// Stream ids: 0, even, going down, reused; frames on idle and closed streams.
	seed(raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 0, block("/")))
	seed(raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 2, block("/")))
	seed(func(fr *http2.Framer) { hdr(fr, 5, "/", true); hdr(fr, 3, "/", true); hdr(fr, 5, "/", true) })
	seed(raw(http2.FrameData, http2.FlagDataEndStream, 0, []byte("x")))
	seed(raw(http2.FrameData, 0, 7, []byte("x")))
	seed(raw(http2.FrameRSTStream, 0, 9, []byte{0, 0, 0, 8}))
	seed(func(fr *http2.Framer) { hdr(fr, 1, "/", true); fr.WriteData(1, true, []byte("late")) })
	// Windows: overflow past 2^31-1 on the connection and a stream, zero increments, a
	// SETTINGS_INITIAL_WINDOW_SIZE that overflows open streams, a zero window (the echo
	// must not buffer), a WINDOW_UPDATE of the wrong length.
	seed(func(fr *http2.Framer) { fr.WriteWindowUpdate(0, 1<<31-1); fr.WriteWindowUpdate(0, 1<<31-1) })
	seed(func(fr *http2.Framer) {
		hdr(fr, 1, "/echo", false)
		fr.WriteWindowUpdate(1, 1<<31-1)
		fr.WriteWindowUpdate(1, 0)
	})
	seed(func(fr *http2.Framer) {
		hdr(fr, 1, "/echo", false)
		fr.WriteWindowUpdate(1, 1<<31-1-65535)
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
	})
	seed(func(fr *http2.Framer) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
		hdr(fr, 1, "/echo", false)
		fr.WriteData(1, true, bytes.Repeat([]byte("z"), 3000))
	})
	seed(raw(http2.FrameWindowUpdate, 0, 0, []byte{0, 0, 1}))
	// SETTINGS out of range or malformed; a flood of PINGs; empty frames.
	seed(func(fr *http2.Framer) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 31})
	})
	seed(func(fr *http2.Framer) { fr.WriteSettings(http2.Setting{ID: http2.SettingMaxFrameSize, Val: 1 << 24}) })
	seed(func(fr *http2.Framer) { fr.WriteSettings(http2.Setting{ID: http2.SettingEnablePush, Val: 2}) })
	seed(raw(http2.FrameSettings, 0, 0, []byte{0, 4, 0}))
	seed(raw(http2.FrameSettings, http2.FlagSettingsAck, 0, []byte{0, 4, 0, 0, 0, 0}))
	seed(func(fr *http2.Framer) {
		for range 150 {
			fr.WritePing(false, [8]byte{1})
		}
	})
	seed(func(fr *http2.Framer) {
		hdr(fr, 1, "/", false)
		for range 150 {
			fr.WriteData(1, false, nil)
		}
	})
	// Trailers with pseudo fields, trailers without END_STREAM, DATA after trailers.
	seed(func(fr *http2.Framer) {
		hdr(fr, 1, "/", false)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block("/"), EndStream: true, EndHeaders: true})
	})
	seed(func(fr *http2.Framer) {
		hdr(fr, 1, "/", false)
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: []byte{0x40, 1, 'x', 1, 'y'}, EndHeaders: true})
		fr.WriteData(1, true, []byte("x"))
	})
	// Rapid reset; a self-dependent PRIORITY; PUSH_PROMISE; GOAWAY; an unknown frame type;
	// a frame larger than the maximum; a content-length that the body does not match.
	seed(func(fr *http2.Framer) {
		for id := uint32(1); id < 400; id += 2 {
			hdr(fr, id, "/echo", false)
			fr.WriteRSTStream(id, http2.ErrCodeCancel)
		}
	})
	seed(func(fr *http2.Framer) {
		fr.WritePriority(3, http2.PriorityParam{StreamDep: 3})
		hdr(fr, 1, "/", false)
		fr.WritePriority(1, http2.PriorityParam{StreamDep: 1})
	})
	seed(raw(http2.FramePushPromise, http2.FlagPushPromiseEndHeaders, 1, []byte{0, 0, 0, 2}))
	seed(func(fr *http2.Framer) { hdr(fr, 1, "/echo", false); fr.WriteGoAway(0, http2.ErrCodeNo, nil) })
	seed(raw(0xee, 0, 1, []byte("unknown")))
	seed(raw(http2.FrameData, 0, 1, make([]byte, 20000)))
	seed(raw(http2.FrameHeaders, http2.FlagHeadersEndHeaders, 1, make([]byte, 20000)))
	seed(func(fr *http2.Framer) {
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: block("/", hpack.HeaderField{Name: "content-length", Value: "3"}), EndHeaders: true})
		fr.WriteData(1, true, []byte("toolong"))
	})
	return seeds
}

// h2FuzzServer is one h2c server for all the inputs of a fuzz run, with small windows so
// that flow control is exercised.
var h2FuzzServer struct {
	once    sync.Once
	addr    string
	srv     *Server
	running atomic.Int64
	log     lockedBuffer // the server's log: a panic it recovered is logged there
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// FuzzH2Conn feeds the own HTTP/2 connection (h2own.go) a valid preface and SETTINGS
// followed by fuzzed frame bytes over a real loopback connection, then the client's FIN.
// It asserts that nothing panics (a panic on the connection's goroutines ends the test
// binary), that the server ends the connection within a bound, and that no handler or
// connection goroutine is left. Run it as
//
//	go test -run '^$' -fuzz FuzzH2Conn -fuzztime 60s -fuzzminimizetime 1x ./internal/server
//
// (the default minimization of each new interesting input takes up to a minute here).
func FuzzH2Conn(f *testing.F) {
	for _, s := range h2FuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		fs := &h2FuzzServer
		fs.once.Do(func() {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			st := Settings{Name: "fuzz", ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
				IdleTimeout: 5 * time.Second, Limits: h1.Limits{MaxHeaderBytes: 8192, MaxHeaders: 50},
				H2: &H2Settings{Cleartext: true, MaxConcurrentStreams: 8, StreamWindow: 65535, ConnWindow: 1 << 17, MaxFrameBytes: 16384,
					MaxResetsPerSecond: 100, MaxControlPerSecond: 100, MaxEmptyPerSecond: 100, MaxContinuations: 16, DrainWait: 10 * time.Millisecond}}
			fs.srv = New(ln, st, fuzzHandler{&fs.running}, slog.New(slog.NewTextHandler(&fs.log, nil)))
			go fs.srv.Serve()
			fs.addr = ln.Addr().String()
		})
		fs.log.mu.Lock()
		fs.log.b.Reset()
		fs.log.mu.Unlock()
		c, err := net.Dial("tcp", fs.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// The client reads (and drops) what the server sends, so that a full socket does
		// not hold the server; it does not give windows back: the fuzzed bytes do.
		readDone := make(chan struct{})
		go func() {
			defer close(readDone)
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			io.Copy(io.Discard, c)
		}()
		var pre bytes.Buffer
		pre.WriteString(h2Preface)
		http2.NewFramer(&pre, nil).WriteSettings()
		c.SetWriteDeadline(time.Now().Add(5 * time.Second))
		c.Write(pre.Bytes())
		c.Write(in) // may fail: the server may have closed already
		c.(*net.TCPConn).CloseWrite()
		select {
		case <-readDone:
		case <-time.After(8 * time.Second):
			t.Fatalf("the server did not end the connection within 8s of the client's FIN (input %q)", in)
		}
		deadline := time.Now().Add(5 * time.Second)
		for fs.srv.Active() > 0 || fs.running.Load() > 0 || h2ConnGoroutines() > 0 {
			if time.Now().After(deadline) {
				t.Fatalf("after the connection ended: %d connections, %d handlers, %d connection goroutines left (input %q)\n%s",
					fs.srv.Active(), fs.running.Load(), h2ConnGoroutines(), in, allStacks())
			}
			time.Sleep(time.Millisecond)
		}
		if l := fs.log.String(); strings.Contains(l, "panic") {
			t.Fatalf("the server recovered a panic (input %q):\n%s", in, l)
		}
	})
}

// h2ConnGoroutines counts the goroutines running a connection's code or a stream's
// handler (idle workers, waiting for their next stream, are not counted).
func h2ConnGoroutines() int {
	n := 0
	for _, g := range strings.Split(allStacks(), "\n\n") {
		if strings.Contains(g, "server.(*h2Own)") || strings.Contains(g, "server.serveOwnStream") ||
			strings.Contains(g, "server.(*conn).serve") {
			n++
		}
	}
	return n
}

func allStacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}
