package health

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sluice/internal/h2pool"
	"sluice/internal/upstream"
)

// refusingHealthServer is a gRPC health server at the frame level (x/net http2.Framer, h2c):
// it refuses (RST_STREAM REFUSED_STREAM) the first refuse streams it gets, or, with goAway,
// answers the first connection's first stream with GOAWAY(last-stream-id 0) instead, and
// answers every other Check SERVING. streams counts the streams that arrived.
type refusingHealthServer struct {
	refuse  int64
	goAway  bool
	streams atomic.Int64
	conns   atomic.Int64
}

func (s *refusingHealthServer) start(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			go s.serve(c, s.conns.Add(1) == 1)
		}
	}()
	return ln.Addr().String()
}

func (s *refusingHealthServer) serve(c net.Conn, first bool) {
	defer c.Close()
	if _, err := io.ReadFull(c, make([]byte, len(http2.ClientPreface))); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	var hb bytes.Buffer
	enc := hpack.NewEncoder(&hb)
	block := func(fields ...string) []byte {
		hb.Reset()
		for i := 0; i < len(fields); i += 2 {
			enc.WriteField(hpack.HeaderField{Name: fields[i], Value: fields[i+1]})
		}
		return bytes.Clone(hb.Bytes())
	}
	fr.WriteSettings()
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		switch f := f.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				fr.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				fr.WritePing(true, f.Data)
			}
		case *http2.MetaHeadersFrame:
			n := s.streams.Add(1)
			switch {
			case s.goAway && first:
				fr.WriteGoAway(0, http2.ErrCodeNo, nil) // the stream is above it: not processed
				time.Sleep(100 * time.Millisecond)
				return
			case n <= s.refuse:
				fr.WriteRSTStream(f.StreamID, http2.ErrCodeRefusedStream)
			}
		case *http2.DataFrame:
			if !f.StreamEnded() || s.streams.Load() <= s.refuse {
				continue
			}
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, EndHeaders: true,
				BlockFragment: block(":status", "200", "content-type", "application/grpc")})
			fr.WriteData(f.StreamID, false, frame([]byte{0x08, 1})) // SERVING
			fr.WriteHeaders(http2.HeadersFrameParam{StreamID: f.StreamID, EndHeaders: true, EndStream: true,
				BlockFragment: block("grpc-status", "0")})
		}
	}
}

// TestGRPCProbeUnprocessed: a gRPC health check whose stream the backend provably did not
// process (REFUSED_STREAM, or above a GOAWAY's last-stream-id: a connection being retired)
// is sent again, as the proxy sends such a request again, instead of counting as a failed
// check of a healthy target; a backend that keeps refusing still fails the check.
func TestGRPCProbeUnprocessed(t *testing.T) {
	for _, tc := range []struct {
		name    string
		srv     *refusingHealthServer
		wantErr bool
	}{
		{"refused once", &refusingHealthServer{refuse: 1}, false},
		{"goaway", &refusingHealthServer{goAway: true}, false},
		{"refused always", &refusingHealthServer{refuse: 1 << 30}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.srv.start(t)
			p := h2pool.New(addr, h2pool.Options{ConnectTimeout: time.Second, PingAfterIdle: time.Minute, PingTimeout: time.Second}, slog.New(slog.DiscardHandler))
			defer p.Close(h2pool.CloseShutdown)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			err := GRPCProbe{Service: "a.B"}.Check(ctx, &upstream.Target{Addr: addr, H2: p})
			if tc.wantErr != (err != nil) {
				t.Fatalf("check: %v (after %d streams); want an error: %v", err, tc.srv.streams.Load(), tc.wantErr)
			}
			if tc.wantErr && tc.srv.streams.Load() > 3 {
				t.Errorf("%d streams for one check of a refusing backend; want at most 3", tc.srv.streams.Load())
			}
		})
	}
}
