//go:build unix

package server

import (
	"encoding/binary"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// cpuTime is the process's user and system CPU time.
func cpuTime(t *testing.T) time.Duration {
	t.Helper()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// settingsPayload is a SETTINGS frame's payload naming SETTINGS_INITIAL_WINDOW_SIZE with
// each of vals, in order.
func settingsPayload(vals ...uint32) []byte {
	var p []byte
	for _, v := range vals {
		p = binary.BigEndian.AppendUint16(p, uint16(http2.SettingInitialWindowSize))
		p = binary.BigEndian.AppendUint32(p, v)
	}
	return p
}

// TestH2OwnSettingsWindowOnce: a SETTINGS frame that names SETTINGS_INITIAL_WINDOW_SIZE
// many times (2,730 fit in 16 KiB) costs one pass over the open streams, not one per
// setting: 500 such frames on a connection with 100 streams open cost about what they cost
// with none (2 ms of CPU a frame more before, so that 100 a second, under the control-frame
// limit, kept a core a fifth busy per connection). The settings still act in order: a value
// that takes a stream's window over 2^31-1 is a connection error FLOW_CONTROL_ERROR even
// when a later one in the frame lowers it again (RFC 9113 §6.9.2), and the last value is
// the one that stays.
func TestH2OwnSettingsWindowOnce(t *testing.T) {
	start := func(t *testing.T) (*rawH2Conn, func()) { // the client, and what answers the held streams
		gate := make(chan struct{})
		addr := startH2CWith(t, gateHandler{gate}, func(st *Settings) {
			st.H2.MaxConcurrentStreams, st.H2.MaxControlPerSecond = 100, 1000
		})
		var open sync.Once
		release := func() { open.Do(func() { close(gate) }) }
		t.Cleanup(release)
		return dialRaw(t, addr), release
	}
	t.Run("in order", func(t *testing.T) {
		r, _ := start(t)
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block("GET", "/wait"), EndStream: true, EndHeaders: true})
		r.fr.WriteWindowUpdate(1, 1) // the stream's window: 65536
		r.fr.WriteRawFrame(http2.FrameSettings, 0, 0, settingsPayload(1<<31-1, 65535))
		_, goAways := r.read(t, 5*time.Second, 99)
		if len(goAways) != 1 || goAways[0].ErrCode != http2.ErrCodeFlowControl {
			t.Fatalf("GOAWAY %v; want FLOW_CONTROL_ERROR: the first value took the window to 2^31", goAways)
		}
	})
	t.Run("the last value stays", func(t *testing.T) {
		r, release := start(t)
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block("GET", "/wait"), EndStream: true, EndHeaders: true})
		r.fr.WriteRawFrame(http2.FrameSettings, 0, 0, settingsPayload(1<<20, 0))
		r.fr.WritePing(false, [8]byte{1})
		r.readUntilPing(t)
		release()
		time.Sleep(100 * time.Millisecond) // the 2-byte answer waits for window: none comes
		r.fr.WritePing(false, [8]byte{2})
		got, _ := r.readUntilPing(t)
		if s := got[1]; s == nil || s.status != "200" || len(s.body) != 0 {
			t.Fatalf("stream 1 with a zero window: %+v; want its head and no DATA", s)
		}
		r.fr.WriteWindowUpdate(1, 2)
		got, _ = r.read(t, 5*time.Second, 1)
		if s := got[1]; s == nil || string(s.body) != "ok" || !s.ended {
			t.Fatalf("stream 1 after WINDOW_UPDATE 2: %+v", s)
		}
	})
	t.Run("one pass per frame", func(t *testing.T) {
		var vals []uint32
		for i := range 2730 {
			vals = append(vals, uint32(65535+i%2))
		}
		p := settingsPayload(vals...)
		cost := func(streams int) time.Duration {
			r, _ := start(t)
			for i := range streams {
				r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: uint32(2*i + 1), BlockFragment: r.block("GET", "/wait"), EndStream: true, EndHeaders: true})
			}
			r.fr.WritePing(false, [8]byte{1})
			r.readUntilPing(t)
			c := cpuTime(t)
			for range 500 {
				r.fr.WriteRawFrame(http2.FrameSettings, 0, 0, p)
			}
			r.fr.WritePing(false, [8]byte{2})
			if _, goAways := r.readUntilPing(t); len(goAways) != 0 {
				t.Fatalf("GOAWAY %v", goAways)
			}
			return cpuTime(t) - c
		}
		idle, busy := cost(0), cost(100)
		t.Logf("500 SETTINGS frames of 2,730 settings: %v of CPU with no stream open, %v with 100", idle, busy)
		if busy > 5*idle+50*time.Millisecond {
			t.Errorf("%v of CPU with 100 streams open against %v with none: a pass over the streams per setting", busy, idle)
		}
	})
}

// readUntilPing reads (as read does) until a PING acknowledgement arrives: the server has
// handled every frame sent before the PING.
func (r *rawH2Conn) readUntilPing(t *testing.T) (map[uint32]*rawStream, []*http2.GoAwayFrame) {
	t.Helper()
	got := map[uint32]*rawStream{}
	var goAways []*http2.GoAwayFrame
	r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		f, err := r.fr.ReadFrame()
		if err != nil {
			t.Fatalf("%v before the PING acknowledgement", err)
		}
		s := got[f.Header().StreamID]
		if s == nil && f.Header().StreamID != 0 {
			s = &rawStream{}
			got[f.Header().StreamID] = s
		}
		switch f := f.(type) {
		case *http2.PingFrame:
			if f.IsAck() {
				return got, goAways
			}
		case *http2.MetaHeadersFrame:
			s.status = f.PseudoValue("status")
		case *http2.DataFrame:
			s.body = append(s.body, f.Data()...)
		case *http2.GoAwayFrame:
			goAways = append(goAways, f)
		case *http2.SettingsFrame:
			if !f.IsAck() {
				r.fr.WriteSettingsAck()
			}
		}
	}
}
