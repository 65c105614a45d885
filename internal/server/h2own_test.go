package server

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sluice/internal/h1"
)

// bodyHandler reads the request body to its end and answers with its length, its SHA-256
// and its trailer fields ("name=value;..."); on "/early" it answers at once, unread.
type bodyHandler struct{}

func (bodyHandler) ServeH1(ex *Exchange) { ex.WriteError(ErrBodyTooLarge, "") }

func (bodyHandler) ServeH2(s *Stream) {
	var h h1.Header
	if string(s.Req.Path) == "/cookie" {
		var v []string
		for _, f := range s.Req.Header.Fields {
			if h1.EqualFold(f.Name, "cookie") {
				v = append(v, string(f.Value))
			}
		}
		body := strings.Join(v, "|")
		s.WriteHead(200, nil, &h, int64(len(body)))
		s.Write([]byte(body))
		return
	}
	if string(s.Req.Path) == "/early" {
		s.WriteHead(200, nil, &h, 5)
		s.Write([]byte("early"))
		return
	}
	sum := sha256.New()
	buf := make([]byte, 10000)
	n := 0
	for {
		k, err := s.ReadBody(buf)
		sum.Write(buf[:k])
		n += k
		if err == io.EOF {
			break
		}
		if err != nil {
			s.WriteHead(500, nil, &h, 0)
			return
		}
	}
	var tr strings.Builder
	for _, f := range s.BodyTrailer().Fields {
		tr.WriteString(string(f.Name) + "=" + string(f.Value) + ";")
	}
	body := strconv.Itoa(n) + " " + hex.EncodeToString(sum.Sum(nil)) + " " + tr.String()
	s.WriteHead(200, nil, &h, int64(len(body)))
	s.Write([]byte(body))
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 10 * time.Second}
}

// TestH2OwnRequestBody: request bodies far larger than the stream and connection windows
// arrive whole and in order on many streams at once (the server gives the windows back as
// the handler reads: without that the uploads stall), and a request's trailer fields reach
// the handler after its body.
func TestH2OwnRequestBody(t *testing.T) {
	addr := startH2CWith(t, bodyHandler{}, func(st *Settings) {
		st.H2.StreamWindow, st.H2.ConnWindow = 65535, 65535
	})
	c := h2cClient()
	defer c.CloseIdleConnections()
	body := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	want := sha256.Sum256(body)
	errs := make(chan error, 4)
	for i := range 4 {
		go func() {
			req, _ := http.NewRequest("POST", "http://"+addr+"/up", io.MultiReader(bytes.NewReader(body))) // no length: chunked-like
			req.Trailer = http.Header{"X-Sum": nil}
			req.Trailer.Set("X-Sum", "s"+strconv.Itoa(i))
			resp, err := c.Do(req)
			if err != nil {
				errs <- err
				return
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			exp := strconv.Itoa(len(body)) + " " + hex.EncodeToString(want[:]) + " x-sum=s" + strconv.Itoa(i) + ";"
			if string(got) != exp {
				errs <- &testErr{"got " + string(got) + ", want " + exp}
				return
			}
			errs <- nil
		}()
	}
	for range 4 {
		select {
		case err := <-errs:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(15 * time.Second):
			t.Fatal("uploads stalled: the windows were not given back")
		}
	}
}

type testErr struct{ s string }

func (e *testErr) Error() string { return e.s }

// rawH2Conn is a raw client connection for the tests here.
type rawH2Conn struct {
	c   net.Conn
	fr  *http2.Framer
	enc *hpack.Encoder
	hb  bytes.Buffer
}

func dialRaw(t *testing.T, addr string, settings ...http2.Setting) *rawH2Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r := &rawH2Conn{c: c, fr: http2.NewFramer(c, c)}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.fr.SetMaxReadFrameSize(1 << 20)
	r.enc = hpack.NewEncoder(&r.hb)
	c.Write([]byte(h2Preface))
	r.fr.WriteSettings(settings...)
	return r
}

func (r *rawH2Conn) block(method, path string, extra ...hpack.HeaderField) []byte {
	r.hb.Reset()
	for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: method}, {Name: ":scheme", Value: "http"},
		{Name: ":authority", Value: "x"}, {Name: ":path", Value: path}}, extra...) {
		r.enc.WriteField(f)
	}
	return bytes.Clone(r.hb.Bytes())
}

// rawStream is what a raw client read of one stream.
type rawStream struct {
	status string
	body   []byte
	ended  bool
	resets []http2.ErrCode
}

// read reads frames until every stream in want has ended (or was reset) or d passes.
func (r *rawH2Conn) read(t *testing.T, d time.Duration, want ...uint32) (map[uint32]*rawStream, []*http2.GoAwayFrame) {
	t.Helper()
	got := map[uint32]*rawStream{}
	var goAways []*http2.GoAwayFrame
	st := func(id uint32) *rawStream {
		if got[id] == nil {
			got[id] = &rawStream{}
		}
		return got[id]
	}
	r.c.SetReadDeadline(time.Now().Add(d))
	for {
		done := true
		for _, id := range want {
			s := got[id]
			done = done && s != nil && (s.ended || len(s.resets) > 0)
		}
		if done {
			return got, goAways
		}
		f, err := r.fr.ReadFrame()
		if err != nil {
			return got, goAways
		}
		switch f := f.(type) {
		case *http2.MetaHeadersFrame:
			if v := f.PseudoValue("status"); v != "" {
				st(f.StreamID).status = v
			}
			st(f.StreamID).ended = st(f.StreamID).ended || f.StreamEnded()
		case *http2.DataFrame:
			s := st(f.StreamID)
			s.body = append(s.body, f.Data()...)
			s.ended = s.ended || f.StreamEnded()
			if len(f.Data()) > 0 {
				r.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
				r.fr.WriteWindowUpdate(f.StreamID, uint32(len(f.Data())))
			}
		case *http2.RSTStreamFrame:
			st(f.StreamID).resets = append(st(f.StreamID).resets, f.ErrCode)
		case *http2.GoAwayFrame:
			goAways = append(goAways, f)
		case *http2.SettingsFrame:
			if !f.IsAck() {
				r.fr.WriteSettingsAck()
			}
		}
	}
}

// TestH2OwnLargeFrames: with max_frame_bytes above the read buffer (32 KiB), a HEADERS
// frame and DATA frames of 200 KB are taken whole, and the frames after them on the same
// connection are read from where they start (a large frame is consumed exactly).
func TestH2OwnLargeFrames(t *testing.T) {
	addr := startH2CWith(t, bodyHandler{}, func(st *Settings) {
		st.H2.MaxFrameBytes = 1 << 20
		st.Limits.MaxHeaderBytes = 1 << 20
	})
	r := dialRaw(t, addr)
	big := strings.Repeat("v", 200<<10)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true,
		BlockFragment: r.block("POST", "/up", hpack.HeaderField{Name: "x-big", Value: big})})
	data := bytes.Repeat([]byte("d"), 200<<10)
	r.fr.WriteData(1, false, data[:60000]) // within the default windows
	r.fr.WriteData(1, true, nil)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true, EndStream: true, BlockFragment: r.block("GET", "/up")})
	got, goAways := r.read(t, 5*time.Second, 1, 3)
	sum := sha256.Sum256(data[:60000])
	if s := got[1]; s == nil || s.status != "200" || string(s.body) != "60000 "+hex.EncodeToString(sum[:])+" " {
		t.Fatalf("stream 1: %+v (goaway %v)", s, goAways)
	}
	empty := sha256.Sum256(nil)
	if s := got[3]; s == nil || s.status != "200" || string(s.body) != "0 "+hex.EncodeToString(empty[:])+" " {
		t.Fatalf("stream 3 after the large frames: %+v (goaway %v)", s, goAways)
	}
}

// TestH2OwnEarlyResponse: a handler that answers before the request body ended gets its
// response out whole (END_STREAM), then the stream is reset with NO_ERROR (RFC 9113 §8.1:
// the client may stop sending), and DATA the client still sends on it is refused with
// STREAM_CLOSED while the connection goes on.
func TestH2OwnEarlyResponse(t *testing.T) {
	addr := startH2C(t, bodyHandler{})
	r := dialRaw(t, addr)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, BlockFragment: r.block("POST", "/early")})
	got, _ := r.read(t, 5*time.Second, 1)
	s := got[1]
	if s == nil || s.status != "200" || string(s.body) != "early" || !s.ended {
		t.Fatalf("early response: %+v", s)
	}
	if len(s.resets) == 0 {
		got, _ = r.read(t, 2*time.Second, 1) // the reset may come in a later read
		if got[1] != nil {
			s.resets = got[1].resets
		}
	}
	if len(s.resets) == 0 || s.resets[0] != http2.ErrCodeNo {
		t.Fatalf("after the early response: resets %v, want NO_ERROR", s.resets)
	}
	r.fr.WriteData(1, true, []byte("late"))
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true, EndStream: true, BlockFragment: r.block("GET", "/x")})
	got, goAways := r.read(t, 5*time.Second, 3)
	if len(goAways) != 0 || got[3] == nil || got[3].status != "200" {
		t.Fatalf("after late DATA: goaway %v, stream 3 %+v", goAways, got[3])
	}
	if got[1] == nil || len(got[1].resets) == 0 || got[1].resets[0] != http2.ErrCodeStreamClosed {
		t.Fatalf("late DATA on the closed stream: %+v, want RST_STREAM STREAM_CLOSED", got[1])
	}
}

// TestH2OwnClientDoesNotRead: a client that makes the gateway answer (here: DATA on a closed
// stream, each answered with RST_STREAM) while it reads nothing does not grow the
// connection's output without bound: past h2MaxQueued the gateway closes the connection,
// long before write_timeout.
func TestH2OwnClientDoesNotRead(t *testing.T) {
	addr, srv := startH2CServer(t, bodyHandler{}, func(st *Settings) { st.WriteTimeout = time.Minute })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.(*net.TCPConn).SetReadBuffer(4 << 10)
	fr := http2.NewFramer(c, c)
	c.Write([]byte(h2Preface))
	fr.WriteSettings()
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	for _, f := range [][2]string{{":method", "GET"}, {":scheme", "http"}, {":path", "/x"}, {":authority", "x"}} {
		enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]})
	}
	fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: hb.Bytes(), EndStream: true, EndHeaders: true})
	// From here on the client reads nothing, and sends 1-byte DATA frames on the closed
	// stream (the gateway gives their connection window back by itself).
	go func() {
		frame := []byte{0, 0, 1, 0, 0, 0, 0, 0, 1, 'x'}
		batch := bytes.Repeat(frame, 1000)
		for {
			if _, err := c.Write(batch); err != nil {
				return
			}
		}
	}()
	deadline := time.Now().Add(20 * time.Second)
	for srv.Active() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the gateway still holds, after 20s, the connection of a client that reads nothing")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestH2OwnCookiesAndContinue: a request's cookie fields (HTTP/2 clients send each cookie
// as a field) reach the handler as one field joined by "; " (RFC 9113 §8.2.3), and a request
// with "Expect: 100-continue" gets a 100 response when its body is first waited for, then
// its final response.
func TestH2OwnCookiesAndContinue(t *testing.T) {
	addr := startH2C(t, bodyHandler{})
	r := dialRaw(t, addr)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true,
		BlockFragment: r.block("GET", "/cookie", hpack.HeaderField{Name: "cookie", Value: "a=1"},
			hpack.HeaderField{Name: "x-other", Value: "o"}, hpack.HeaderField{Name: "cookie", Value: "b=2"})})
	got, _ := r.read(t, 5*time.Second, 1)
	if s := got[1]; s == nil || string(s.body) != "a=1; b=2" {
		t.Fatalf("cookies: %+v", s)
	}

	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndHeaders: true,
		BlockFragment: r.block("POST", "/up", hpack.HeaderField{Name: "expect", Value: "100-continue"})})
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatalf("no 100 Continue: %v", err)
		}
		if mh, ok := f.(*http2.MetaHeadersFrame); ok && mh.StreamID == 3 {
			if st := mh.PseudoValue("status"); st != "100" || mh.StreamEnded() {
				t.Fatalf("first HEADERS of stream 3: status %q, ended %v; want 100", st, mh.StreamEnded())
			}
			break
		}
	}
	r.fr.WriteData(3, true, []byte("body"))
	got, _ = r.read(t, 5*time.Second, 3)
	if s := got[3]; s == nil || s.status != "200" || !strings.HasPrefix(string(s.body), "4 ") {
		t.Fatalf("after 100 Continue: %+v", s)
	}
}

// servedCount is holdHandler counting the streams its handler was given.
type servedCount struct {
	holdHandler
	n atomic.Int32
}

func (h *servedCount) ServeH2(s *Stream) {
	h.n.Add(1)
	h.holdHandler.ServeH2(s)
}

// TestH2GoAwayNamesTakenStreams: a GOAWAY names the last stream taken in, and a stream is
// served only if it names it. The idle timer fires (through a test hook) while stream 3's
// header block is still being read (its CONTINUATION frame), or after its request was
// built and before it was admitted: either way the GOAWAY names stream 1, served before,
// and stream 3 is ignored, unserved, so the client knows it may retry it. Naming the
// highest id read (3) would tell it that stream 3 may have been processed, though it was
// not; admitting it after the GOAWAY (a check before the build and an insert after it, in
// two holds of o.mu) would serve a request the client may send again.
func TestH2GoAwayNamesTakenStreams(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func() // installs the hook that fires the idle timer
	}{
		{"header block being read", func() {
			hook := func(o *h2Own, fh http2.FrameHeader) {
				if fh.Type == http2.FrameContinuation {
					o.idleFired() // no stream is open: GOAWAY NO_ERROR, the connection ends
				}
			}
			h2FrameHook.Store(&hook)
		}},
		{"request built, not admitted", func() {
			var n atomic.Int32
			hook := func(o *h2Own) {
				if n.Add(1) == 2 { // stream 3
					o.idleFired()
				}
			}
			h2BuiltHook.Store(&hook)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.set()
			t.Cleanup(func() { h2FrameHook.Store(nil); h2BuiltHook.Store(nil) })
			h := &servedCount{}
			r := dialRaw(t, startH2CWith(t, h, nil))
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, EndHeaders: true, EndStream: true, BlockFragment: r.block("GET", "/ok")})
			if got, _ := r.read(t, 5*time.Second, 1); got[1] == nil || got[1].status != "200" {
				t.Fatalf("stream 1: %+v", got[1])
			}
			blk := r.block("GET", "/ok")
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, EndStream: true, BlockFragment: blk[:2]})
			r.fr.WriteContinuation(3, true, blk[2:])
			got, goAways := r.read(t, 5*time.Second, 99) // to the connection's end
			if len(goAways) != 1 || goAways[0].LastStreamID != 1 || goAways[0].ErrCode != http2.ErrCodeNo {
				t.Errorf("GOAWAY frames %v, want one NO_ERROR naming stream 1", goAways)
			}
			if got[3] != nil || h.n.Load() != 1 {
				t.Errorf("stream 3 answered %+v, %d streams served: want stream 3 ignored, 1 served", got[3], h.n.Load())
			}
		})
	}
}
