package h2pool

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sluice/internal/testutil"
)

// TestStuckWritesRetireConnection: once a write on a connection is found stuck (the backend
// stopped reading behind an upload), the connection takes no new stream: the next request
// goes on a new connection at once, and the stuck one is recorded as write_stuck. Found
// stuck either way: the upload's own request ends while its DATA write is blocked (the
// write is stopped, which closes the connection), or another request gives up waiting for
// the connection's writes (the connection drains).
func TestStuckWritesRetireConnection(t *testing.T) {
	for _, tc := range []struct {
		name string
		// find makes the stuck write known, given the stalled upload's cancel and a channel
		// closed when the upload's RoundTrip returned.
		find func(t *testing.T, p *Pool, cancelUpload func(), upDone <-chan struct{})
	}{
		{"the upload's request ends", func(t *testing.T, p *Pool, cancelUpload func(), upDone <-chan struct{}) {
			cancelUpload()
			select { // the request's end is seen by its AfterFunc, which stops the write
			case <-upDone:
			case <-time.After(hangBound):
				t.Fatal("the upload's RoundTrip did not end with its request")
			}
		}},
		{"a request gives up waiting behind it", func(t *testing.T, p *Pool, cancelUpload func(), _ <-chan struct{}) {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://backend/wait", nil)
			var a Attempt
			resp, err := p.RoundTrip(req, &a)
			if err == nil {
				resp.Body.Close()
				p.Done(&a)
				t.Fatal("a request behind a stuck write was answered")
			}
			if !errors.Is(err, ErrUnprocessed) {
				t.Errorf("the request that waited behind the stuck write failed with %v; want ErrUnprocessed", err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { ln.Close() })
			stop := make(chan struct{})
			defer close(stop)
			var firstStreams, laterStreams atomic.Int64
			go func() {
				for n := 0; ; n++ {
					nc, err := ln.Accept()
					if err != nil {
						return
					}
					if n == 0 {
						go testutil.StallAfterHeaders(nc, stop, &firstStreams)
					} else {
						go answerAll(nc, &laterStreams)
					}
				}
			}()
			p := newPool(t, ln.Addr().String(), testOptions())

			// The upload: a body that never ends, which the backend does not read.
			upCtx, cancelUpload := context.WithCancel(context.Background())
			defer cancelUpload()
			body := &endlessBody{}
			upDone := make(chan struct{})
			go func() {
				defer close(upDone)
				req, _ := http.NewRequestWithContext(upCtx, "POST", "http://backend/upload", body)
				var a Attempt
				resp, err := p.RoundTrip(req, &a)
				if err == nil {
					resp.Body.Close()
					p.Done(&a)
				}
			}()
			testutil.WaitStill(t, hangBound, "the upload to fill the sockets", body.read.Load)
			tc.find(t, p, cancelUpload, upDone)

			ctx, cancel := context.WithTimeout(context.Background(), hangBound)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "GET", "http://backend/next", nil)
			var a Attempt
			resp, err := p.RoundTrip(req, &a)
			if err != nil {
				t.Fatalf("the next request: %v; want it answered on a new connection", err)
			}
			resp.Body.Close()
			p.Done(&a)
			if n := laterStreams.Load(); n != 1 || firstStreams.Load() != 1 {
				t.Errorf("the stuck connection got %d streams, later ones %d; want 1 (the upload) and 1", firstStreams.Load(), n)
			}
			cancelUpload()
			select {
			case <-upDone:
			case <-time.After(hangBound):
				t.Fatal("the upload's RoundTrip did not end with its request")
			}
			testutil.WaitFor(t, hangBound, "the stuck connection's life record", func() bool { return len(p.Snapshot().History) >= 1 })
			if got := p.Snapshot().History[0]; got.Reason != CloseWriteStuck {
				t.Errorf("the stuck connection closed for %q; want %q", got.Reason, CloseWriteStuck)
			}
		})
	}
}

// endlessBody is a request body that never ends, counting the bytes read from it.
type endlessBody struct{ read atomic.Int64 }

func (b *endlessBody) Read(p []byte) (int, error) {
	b.read.Add(int64(len(p)))
	return len(p), nil
}

func (b *endlessBody) Close() error { return nil }

// answerAll is a backend connection that answers every request 200 at its HEADERS,
// counting them in n.
func answerAll(nc net.Conn, n *atomic.Int64) {
	defer nc.Close()
	p := acceptPeer(nc)
	if p == nil {
		return
	}
	p.fr.WriteSettings()
	for {
		id := p.awaitHeaders()
		if id == 0 {
			return
		}
		n.Add(1)
		p.answer(id)
	}
}

// acceptPeer reads the client preface on a backend's connection nc and returns the peer
// that serves it (nil when the client went away).
func acceptPeer(nc net.Conn) *rawPeer {
	pre := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(nc, pre); err != nil {
		return nil
	}
	p := &rawPeer{nc: nc, fr: http2.NewFramer(nc, nc)}
	p.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	p.henc = hpack.NewEncoder(&p.hbuf)
	return p
}
