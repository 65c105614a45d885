package server

import (
	"testing"
	"time"

	"golang.org/x/net/http2"
)

// pingRun is what one PING-flood client saw: PING ACKs, the DATA frames between them, and
// the GOAWAY code that ended the connection (ErrCodeNo with cut false: none).
type pingRun struct {
	acks, datas int
	cut         bool
	code        http2.ErrCode
	elapsed     time.Duration
}

// floodPings runs one client for d against the /big handler (64 MiB in 16 KiB writes) with
// max_control_frames_per_second 10. With trickle, its windows are 1 byte and it gives one
// byte back for every DATA frame, so every frame of the answer is a batch of its own, and
// sends a PING after each (the most free PINGs the "answered" rule can give). Without it,
// it sends back-to-back PINGs with nothing answered between them.
func floodPings(t *testing.T, trickle bool, d time.Duration) pingRun {
	t.Helper()
	addr := startH2CWith(t, workerHandler{writeErr: make(chan error, 1)}, func(st *Settings) {
		st.H2.MaxControlPerSecond = 10
		st.WriteTimeout = 10 * time.Second
	})
	r := dialRaw(t, addr, http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1})
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block("GET", "/big"), EndStream: true, EndHeaders: true})
	var run pingRun
	start := time.Now()
	r.c.SetReadDeadline(start.Add(d + 2*time.Second))
	if !trickle {
		for range 200 {
			r.fr.WritePing(false, [8]byte{})
		}
	}
	for time.Since(start) < d {
		f, err := r.fr.ReadFrame()
		if err != nil {
			break
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				r.fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			run.acks++
		case *http2.DataFrame:
			run.datas++
			if trickle && len(f.Data()) > 0 {
				r.fr.WritePing(false, [8]byte{1}) // before the window: the frame just read answered it
				r.fr.WriteWindowUpdate(f.StreamID, uint32(len(f.Data())))
				r.fr.WriteWindowUpdate(0, uint32(len(f.Data())))
			}
		case *http2.GoAwayFrame:
			run.cut, run.code = true, f.ErrCode
		}
		if run.cut {
			break
		}
	}
	run.elapsed = time.Since(start)
	return run
}

// TestH2OwnFreePingsBounded: a PING after the gateway sent stream frames does not count
// toward max_control_frames_per_second (h2own.go count), so that a client measuring the
// connection as answers arrive is not cut. That must not make PINGs free in bulk: PINGs
// with nothing sent between them are cut at the limit, and a client that makes every
// frame of an answer its own batch (1-byte windows, a window update and a PING per DATA
// frame) gets no free PINGs from the frames its window forced out one by one: before the
// bound, 24,000 PINGs a second on one stream at a limit of 10.
func TestH2OwnFreePingsBounded(t *testing.T) {
	t.Run("back-to-back", func(t *testing.T) {
		run := floodPings(t, false, 2*time.Second)
		if !run.cut || run.code != http2.ErrCodeEnhanceYourCalm {
			t.Fatalf("200 PINGs with nothing answered between them: %d ACKs, GOAWAY %v (%v); want ENHANCE_YOUR_CALM at 10 a second", run.acks, run.code, run.cut)
		}
		if run.acks > 2*10+1 {
			t.Errorf("%d PINGs answered before the cut; want at most two windows of 10", run.acks)
		}
	})
	t.Run("one per DATA frame", func(t *testing.T) {
		run := floodPings(t, true, 2*time.Second)
		rate := float64(run.acks) / run.elapsed.Seconds()
		t.Logf("%d DATA frames, %d PING ACKs in %v (%.0f PINGs/s), cut %v %v", run.datas, run.acks, run.elapsed.Round(time.Millisecond), rate, run.cut, run.code)
		// The handler never flushes: its frames went out only because the window forced
		// them, which earns nothing. So the limit (10 a second; 3 windows for a 2s run)
		// and the PING that ends it.
		if bound := 3*10 + 1; run.acks > bound {
			t.Errorf("%d PINGs answered for one stream in %v (%.0f/s) at max_control_frames_per_second 10; want at most %d", run.acks, run.elapsed.Round(time.Millisecond), rate, bound)
		}
	})
}

// TestH2OwnPingPerAnswerFree: a client that sends a PING after each answer it reads (grpc-go's
// BDP estimator does, one per unary call) is not cut at max_control_frames_per_second, both
// when an answer is handed to the connection's writer and when, as the connection's only
// stream with nothing else to send, its handler's end writes it straight to the socket
// (endOwn's direct write). The second is made the usual case by a client that waits for each
// PING's ACK before its next request: the writer is then idle and nothing is queued. (Without
// that wait, the ACK of the previous PING is usually still queued or being written, and the
// answers take the hand-off: the direct write's own mark went untested.)
func TestH2OwnPingPerAnswerFree(t *testing.T) {
	for _, tc := range []struct {
		name     string
		awaitAck bool
	}{{"next request at once", false}, {"next request after the ACK (direct write)", true}} {
		t.Run(tc.name, func(t *testing.T) {
			addr := startH2CWith(t, workerHandler{}, func(st *Settings) { st.H2.MaxControlPerSecond = 10 })
			r := dialRaw(t, addr)
			const calls = 60
			r.c.SetReadDeadline(time.Now().Add(10 * time.Second))
			acks := 0
			// readUntil reads frames until done says the one awaited came; a GOAWAY fails.
			readUntil := func(i int, done func(http2.Frame) bool) {
				for {
					f, err := r.fr.ReadFrame()
					if err != nil {
						t.Fatalf("call %d: %v", i, err)
					}
					switch f := f.(type) {
					case *http2.SettingsFrame:
						if !f.IsAck() {
							r.fr.WriteSettingsAck()
						}
					case *http2.PingFrame:
						acks++
					case *http2.GoAwayFrame:
						t.Fatalf("call %d: GOAWAY %v after %d PINGs, one per answer; want none", i, f.ErrCode, acks)
					}
					if done(f) {
						return
					}
				}
			}
			for i := range calls {
				id := uint32(2*i + 1)
				r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block("GET", "/ok"), EndStream: true, EndHeaders: true})
				readUntil(i, func(f http2.Frame) bool {
					h := f.Header()
					return (h.Type == http2.FrameData || h.Type == http2.FrameHeaders) && h.StreamID == id && h.Flags.Has(http2.FlagDataEndStream)
				})
				r.fr.WritePing(false, [8]byte{byte(i)})
				if tc.awaitAck {
					readUntil(i, func(f http2.Frame) bool {
						p, ok := f.(*http2.PingFrame)
						return ok && p.IsAck() && p.Data[0] == byte(i)
					})
				}
			}
		})
	}
}
