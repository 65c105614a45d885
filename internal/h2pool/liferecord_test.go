package h2pool

import (
	"context"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"

	"golang.org/x/net/http2"

	"sluice/internal/testutil"
)

// TestLifeRecordsFromFrames: what a closed connection's life record says of the backend (its
// latest GOAWAY's code and last-stream-id, the streams it refused and the others it reset,
// whether it closed the connection) comes from the frames the client's read loop handled.
func TestLifeRecordsFromFrames(t *testing.T) {
	tests := []struct {
		name string
		// serve answers the warm-up stream, then acts on the three concurrent ones (ids sorted).
		serve func(p *rawPeer, ids []uint32)
		want  LifeRecord
	}{
		{
			name: "resets and goaway",
			serve: func(p *rawPeer, ids []uint32) {
				p.fr.WriteRSTStream(ids[0], http2.ErrCodeRefusedStream)
				p.fr.WriteRSTStream(ids[1], http2.ErrCodeCancel)
				p.fr.WriteGoAway(1<<31-1, http2.ErrCodeNo, nil)
				p.fr.WriteGoAway(ids[2], http2.ErrCodeEnhanceYourCalm, []byte("calm"))
				p.answer(ids[2])
			},
			want: LifeRecord{Reason: CloseGoAway, Streams: 4, GoAwayCode: "ENHANCE_YOUR_CALM", Refused: 1, Resets: 1},
		},
		{
			name: "closed without goaway",
			serve: func(p *rawPeer, ids []uint32) {
				for _, id := range ids {
					p.answer(id)
				}
			},
			want: LifeRecord{Reason: CloseBackendClosed, Streams: 4},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			var last uint32
			served := make(chan struct{})
			go func() {
				defer close(served)
				nc, err := ln.Accept()
				if err != nil {
					return
				}
				defer nc.Close() // the backend closes the connection when done
				p := acceptPeer(nc)
				if p == nil {
					return
				}
				p.fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 10})
				p.answer(p.awaitHeaders())
				ids := []uint32{p.awaitHeaders(), p.awaitHeaders(), p.awaitHeaders()}
				slices.Sort(ids)
				last = ids[2]
				tc.serve(p, ids)
			}()
			p := newPool(t, ln.Addr().String(), testOptions())
			get := func() {
				ctx, cancel := context.WithTimeout(context.Background(), hangBound)
				defer cancel()
				req, _ := http.NewRequestWithContext(ctx, "GET", "http://backend/x", nil)
				var a Attempt
				if resp, err := p.RoundTrip(req, &a); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					p.Done(&a)
				}
			}
			get() // the warm-up: the SETTINGS are applied, the three go on this connection
			var wg sync.WaitGroup
			for range 3 {
				wg.Go(get)
			}
			wg.Wait()
			<-served
			testutil.WaitFor(t, hangBound, "the connection's life record", func() bool { return len(p.Snapshot().History) == 1 })
			got := p.Snapshot().History[0]
			want := tc.want
			if want.GoAwayCode != "" {
				want.GoAwayLastStreamID = last // the latest GOAWAY's, not the first's
			}
			if got.Reason != want.Reason || got.Streams != want.Streams || got.GoAwayCode != want.GoAwayCode ||
				got.GoAwayLastStreamID != want.GoAwayLastStreamID || got.Refused != want.Refused || got.Resets != want.Resets {
				t.Errorf("life record %+v; want %+v", got, want)
			}
		})
	}
}

// answer sends a whole 200 response on stream id.
func (p *rawPeer) answer(id uint32) {
	p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(":status", "200"), EndHeaders: true, EndStream: true})
}
