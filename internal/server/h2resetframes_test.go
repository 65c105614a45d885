package server

import (
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sluice/internal/h1"
)

// gateHandler answers "/wait" once gate is closed and anything else at once, its body unread.
type gateHandler struct{ gate chan struct{} }

func (gateHandler) ServeH1(ex *Exchange) { ex.WriteError(ErrBodyTooLarge, "") }

func (g gateHandler) ServeH2(s *Stream) {
	if string(s.Req.Path) == "/wait" {
		<-g.gate
	}
	var h h1.Header
	s.WriteHead(200, nil, &h, 2)
	s.Write([]byte("ok"))
}

// TestH2FramesAfterServerReset: a stream the server reset (RST_STREAM NO_ERROR after an
// answer given before the request's end, or REFUSED_STREAM above max_concurrent_streams)
// may still receive the frames the client sent before it read the reset (RFC 9113 §5.1,
// "closed": an endpoint MUST ignore them). Its trailer section (a HEADERS frame) is a
// stream error STREAM_CLOSED, as its DATA is, and the connection's other streams go on: it
// ended the connection with GOAWAY STREAM_CLOSED, cutting every stream in flight on it,
// though the client broke no rule.
func TestH2FramesAfterServerReset(t *testing.T) {
	for _, tc := range []struct {
		name    string
		maxOpen uint32
		reset   http2.ErrCode // what the server resets stream 3 with
	}{
		{"answered early", 10, http2.ErrCodeNo},
		{"refused", 1, http2.ErrCodeRefusedStream},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gate := make(chan struct{})
			addr := startH2CWith(t, gateHandler{gate}, func(st *Settings) { st.H2.MaxConcurrentStreams = tc.maxOpen })
			var open sync.Once
			t.Cleanup(func() { open.Do(func() { close(gate) }) }) // before the server's shutdown
			r := dialRaw(t, addr)
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block("GET", "/wait"), EndStream: true, EndHeaders: true})
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: r.block("POST", "/up"), EndHeaders: true})
			r.fr.WriteData(3, false, []byte("body"))
			var reset *http2.RSTStreamFrame // read up to stream 3's reset (after its answer, if any)
			r.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			for reset == nil {
				f, err := r.fr.ReadFrame()
				if err != nil {
					t.Fatal(err)
				}
				if rs, ok := f.(*http2.RSTStreamFrame); ok && rs.StreamID == 3 {
					reset = rs
				}
			}
			if reset.ErrCode != tc.reset {
				t.Fatalf("stream 3 reset with %v; want %v", reset.ErrCode, tc.reset)
			}
			// Sent before the client read the reset: the trailer section. (No DATA before it: the
			// RST_STREAM STREAM_CLOSED that answers it would hide how the stream was reset.)
			r.hb.Reset()
			r.enc.WriteField(hpack.HeaderField{Name: "x-sum", Value: "1"})
			r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: r.hb.Bytes(), EndStream: true, EndHeaders: true})
			r.fr.WritePing(false, [8]byte{1}) // its answer: the server has read the frames before it
			var frames []string
			for {
				f, err := r.fr.ReadFrame()
				if err != nil {
					t.Fatalf("%v after %v", err, frames)
				}
				frames = append(frames, f.Header().Type.String())
				if p, ok := f.(*http2.PingFrame); ok && p.IsAck() {
					break
				}
			}
			open.Do(func() { close(gate) })
			got, goAways := r.read(t, 5*time.Second, 1)
			if s := got[1]; len(goAways) != 0 || s == nil || s.status != "200" || !s.ended {
				t.Fatalf("stream 1: %+v, GOAWAY %v; want it answered 200 on a live connection", s, goAways)
			}
		})
	}
}
