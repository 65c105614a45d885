package server

import (
	"io"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"sluice/internal/h1"
)

// TestH2OwnPaddedBodyWindows: padding in request DATA frames counts against both receive
// windows (RFC 9113 §6.1), so it must be given back to both: an upload of padded frames far
// larger than the stream window, sent by a client that keeps to its windows, arrives whole.
// Given back to the connection window only, the client's stream window shrinks by the
// padding of every frame and the upload stalls after about 256 frames.
func TestH2OwnPaddedBodyWindows(t *testing.T) {
	addr := startH2CWith(t, bodyHandler{}, func(st *Settings) {
		st.H2.StreamWindow, st.H2.ConnWindow = 65535, 1<<20
	})
	r := dialRaw(t, addr)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block("POST", "/up"), EndHeaders: true})

	var mu, wmu sync.Mutex // wmu: the Framer's writes
	cond := sync.NewCond(&mu)
	connWin, streamWin := int64(65535), int64(65535) // the server's SETTINGS raise the stream's: taken as 65535
	var resp []byte
	var status string
	ended, failed := false, ""
	go func() {
		for {
			f, err := r.fr.ReadFrame()
			mu.Lock()
			if err != nil {
				failed = err.Error()
				cond.Broadcast()
				mu.Unlock()
				return
			}
			switch f := f.(type) {
			case *http2.WindowUpdateFrame:
				if f.StreamID == 0 {
					connWin += int64(f.Increment)
				} else {
					streamWin += int64(f.Increment)
				}
			case *http2.SettingsFrame:
				if !f.IsAck() {
					wmu.Lock()
					r.fr.WriteSettingsAck()
					wmu.Unlock()
				}
			case *http2.MetaHeadersFrame:
				status = f.PseudoValue("status")
			case *http2.DataFrame:
				resp = append(resp, f.Data()...)
				ended = f.StreamEnded()
			case *http2.RSTStreamFrame:
				failed = "RST_STREAM " + f.ErrCode.String()
			case *http2.GoAwayFrame:
				failed = "GOAWAY " + f.ErrCode.String()
			}
			cond.Broadcast()
			mu.Unlock()
		}
	}()

	// 1,000 frames of 1 data byte and 255 bytes of padding: 257 bytes of window each.
	const frames, frameLen = 1000, 257
	pad := make([]byte, 255)
	deadline := time.Now().Add(10 * time.Second)
	timer := time.AfterFunc(10*time.Second, func() { mu.Lock(); cond.Broadcast(); mu.Unlock() })
	defer timer.Stop()
	mu.Lock()
	for i := range frames {
		for (connWin < frameLen || streamWin < frameLen) && failed == "" && time.Now().Before(deadline) {
			cond.Wait()
		}
		if failed != "" || time.Now().After(deadline) {
			mu.Unlock()
			t.Fatalf("upload stalled after %d of %d padded frames (stream window %d, connection window %d, %s): the padding was not given back",
				i, frames, streamWin, connWin, failed)
		}
		connWin -= frameLen
		streamWin -= frameLen
		mu.Unlock()
		wmu.Lock()
		r.fr.WriteDataPadded(1, i == frames-1, []byte{'a'}, pad)
		wmu.Unlock()
		mu.Lock()
	}
	for !ended && failed == "" && time.Now().Before(deadline) {
		cond.Wait()
	}
	defer mu.Unlock()
	want := strconv.Itoa(frames) + " "
	if status != "200" || !strings.HasPrefix(string(resp), want) {
		t.Fatalf("response %s %q (%s), want 200 and a body of %d bytes", status, resp, failed, frames)
	}
}

// slowCancelHandler waits for its stream's end and then a little more, as a proxied
// request does (the upstream exchange notices the cancel and unwinds); running and peak
// count the handlers in flight.
type slowCancelHandler struct {
	mu            *sync.Mutex
	running, peak *int
}

func (slowCancelHandler) ServeH1(ex *Exchange) { ex.WriteError(ErrBodyTooLarge, "") }

func (h slowCancelHandler) ServeH2(s *Stream) {
	h.mu.Lock()
	*h.running++
	*h.peak = max(*h.peak, *h.running)
	h.mu.Unlock()
	select {
	case <-s.Context().Done():
		time.Sleep(300 * time.Millisecond)
	case <-time.After(5 * time.Second):
	}
	h.mu.Lock()
	*h.running--
	h.mu.Unlock()
}

// TestH2OwnServerResetsCounted: rapid reset (CVE-2023-44487) where the client makes the
// server reset its streams (here with a zero WINDOW_UPDATE increment, a stream error) instead
// of sending RST_STREAM itself. Each reset stream leaves the connection's stream count but
// its handler still runs, so without a bound a client starts handlers without limit. These
// resets count against max_resets_per_second like the client's own: past it the connection
// ends with GOAWAY ENHANCE_YOUR_CALM and the handlers in flight stay bounded.
func TestH2OwnServerResetsCounted(t *testing.T) {
	var mu sync.Mutex
	var running, peak int
	addr := startH2CWith(t, slowCancelHandler{&mu, &running, &peak}, func(st *Settings) {
		st.H2.MaxResetsPerSecond = 50
	})
	r := dialRaw(t, addr)
	const streams = 600
	for i := range streams {
		id := uint32(2*i + 1)
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block("GET", "/"), EndStream: true, EndHeaders: true})
		r.fr.WriteRawFrame(http2.FrameWindowUpdate, 0, id, []byte{0, 0, 0, 0})
	}
	var goAways []*http2.GoAwayFrame
	r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			break
		}
		if g, ok := f.(*http2.GoAwayFrame); ok {
			goAways = append(goAways, g)
		}
	}
	mu.Lock()
	p := peak
	mu.Unlock()
	if len(goAways) == 0 || goAways[len(goAways)-1].ErrCode != http2.ErrCodeEnhanceYourCalm {
		t.Errorf("GOAWAY %v; want ENHANCE_YOUR_CALM after max_resets_per_second server resets", goAways)
	}
	// Bound: the resets allowed in a second (two windows, should the burst straddle one on
	// a loaded machine) plus the streams allowed open at once. Without the count: 600.
	if bound := 2*50 + 10 + 1; p > bound {
		t.Errorf("%d handlers ran at once for %d streams the server reset; want at most %d", p, streams, bound)
	}
}

// TestH2OwnZeroWindowWriteTimeout: a client that reads everything but never gives window
// back (here SETTINGS_INITIAL_WINDOW_SIZE 0 and no WINDOW_UPDATE) holds a response's writer
// for at most write_timeout, as a client that does not read does: the handler's write fails
// and the stream is reset. Without the bound the handler (and, through the gateway, an
// upstream connection) waits as long as the client keeps the connection open.
func TestH2OwnZeroWindowWriteTimeout(t *testing.T) {
	wh := workerHandler{writeErr: make(chan error, 1)}
	addr := startH2CWith(t, wh, func(st *Settings) { st.WriteTimeout = 300 * time.Millisecond })
	r := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 0})
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block("GET", "/big"), EndStream: true, EndHeaders: true})
	reset := make(chan http2.ErrCode, 1)
	go func() {
		r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
		for {
			f, err := r.fr.ReadFrame() // no WINDOW_UPDATE is ever sent
			if err != nil {
				return
			}
			if rs, ok := f.(*http2.RSTStreamFrame); ok && rs.StreamID == 1 {
				reset <- rs.ErrCode
				return
			}
			if sf, ok := f.(*http2.SettingsFrame); ok && !sf.IsAck() {
				r.fr.WriteSettingsAck()
			}
		}
	}()
	select {
	case err := <-wh.writeErr:
		if err == nil {
			t.Fatal("the handler wrote 64 MiB through a zero window")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("the handler's write still waits for window 3s later; write_timeout is 300ms")
	}
	select {
	case code := <-reset:
		if code != http2.ErrCodeInternal {
			t.Errorf("stream reset with %v; want INTERNAL_ERROR", code)
		}
	case <-time.After(3 * time.Second):
		t.Error("the stream was not reset after its write timed out")
	}
}

// slowReadHandler reads the request body 8 KiB at a time, slower than the client sends it,
// and reports the largest the stream's body buffer grew and the bytes read.
type slowReadHandler struct{ done chan [2]int }

func (slowReadHandler) ServeH1(ex *Exchange) { ex.WriteError(ErrBodyTooLarge, "") }

func (h slowReadHandler) ServeH2(s *Stream) {
	buf := make([]byte, 8<<10)
	maxCap, total := 0, 0
	for {
		n, err := s.ReadBody(buf)
		total += n
		s.x.rmu.Lock()
		maxCap = max(maxCap, cap(s.x.body))
		s.x.rmu.Unlock()
		if err != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}
	var hd h1.Header
	s.WriteHead(200, nil, &hd, 0)
	h.done <- [2]int{maxCap, total}
}

// TestH2OwnBodyBufferBounded: a handler that reads the request body more slowly than the
// client sends it (an upload to a slow upstream) never empties the stream's body buffer; the
// buffer must still stay within about the stream window, not grow with the whole body (the
// bytes already read were kept at its front while new ones were appended behind them).
func TestH2OwnBodyBufferBounded(t *testing.T) {
	h := slowReadHandler{done: make(chan [2]int, 1)}
	addr := startH2CWith(t, h, func(st *Settings) {
		st.H2.StreamWindow, st.H2.ConnWindow = 65535, 1<<20
	})
	c := h2cClient()
	defer c.CloseIdleConnections()
	const size = 4 << 20
	resp, err := c.Post("http://"+addr+"/up", "application/octet-stream", io.LimitReader(zeroReader{}, size))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := <-h.done
	if got[1] != size {
		t.Fatalf("handler read %d bytes, want %d", got[1], size)
	}
	t.Logf("body buffer at most %d bytes", got[0])
	if got[0] > 4*65535 {
		t.Errorf("the stream's body buffer grew to %d bytes for a %d-byte body through a 65535-byte window", got[0], size)
	}
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// partialReadHandler reads 10,000 bytes of the request body (less than a quarter window:
// no WINDOW_UPDATE goes out), says so, and waits for the stream's end.
type partialReadHandler struct{ read chan struct{} }

func (partialReadHandler) ServeH1(ex *Exchange) { ex.WriteError(ErrBodyTooLarge, "") }

func (h partialReadHandler) ServeH2(s *Stream) {
	io.ReadFull(readerFunc(s.ReadBody), make([]byte, 10000))
	h.read <- struct{}{}
	select {
	case <-s.Context().Done():
	case <-time.After(5 * time.Second):
	}
}

// TestH2OwnStreamWindowEnforced: bytes the handler read but not yet given back to the client
// (below the quarter-window batch) are still outside the client's stream window; DATA past
// that window is a flow-control error even when the handler has read some. The check
// counted only the unread bytes, so a client could overrun the window by the batch.
func TestH2OwnStreamWindowEnforced(t *testing.T) {
	h := partialReadHandler{read: make(chan struct{}, 1)}
	addr := startH2CWith(t, h, func(st *Settings) {
		st.H2.StreamWindow, st.H2.ConnWindow = 65535, 1<<20
	})
	r := dialRaw(t, addr)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block("POST", "/up"), EndHeaders: true})
	chunk := make([]byte, 16384)
	for range 3 {
		r.fr.WriteData(1, false, chunk)
	}
	r.fr.WriteData(1, false, chunk[:16383]) // the whole window: 65535
	select {
	case <-h.read:
	case <-time.After(5 * time.Second):
		t.Fatal("the handler did not read")
	}
	r.fr.WriteData(1, false, chunk[:10000]) // past the window: nothing was given back
	got, _ := r.read(t, 3*time.Second, 1)
	if s := got[1]; s == nil || len(s.resets) == 0 || s.resets[0] != http2.ErrCodeFlowControl {
		t.Fatalf("stream 1: %+v; want RST_STREAM FLOW_CONTROL_ERROR for DATA past the stream window", s)
	}
}
