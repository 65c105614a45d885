package h2pool

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"testing"

	"golang.org/x/net/http2"

	"sluice/internal/testutil"
)

// TestClientBodyBufferPooled: a body received faster than it is read moves through the
// buffer classes with its bytes intact, and the stream holds no buffer once the reader has
// drained it (between messages, and after the end).
func TestClientBodyBufferPooled(t *testing.T) {
	const size = 3 << 20
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(i % 251)
	}
	more := make(chan struct{})
	cc := newRawPeer(t, func(p *rawPeer) {
		p.fr.WriteSettings()
		id := p.awaitHeaders()
		p.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: p.block(":status", "200"), EndHeaders: true})
		p.fr.WriteData(id, false, body[:100]) // a first message, read as it comes
		<-more
		for b := body[100:]; len(b) > 0; b = b[min(len(b), 16384):] {
			p.fr.WriteData(id, false, b[:min(len(b), 16384)])
		}
		p.fr.WriteData(id, true, nil)
		p.drain()
	})
	resp, cs := getStream(t, cc)
	got := make([]byte, 100)
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatal(err)
	}
	held := func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return cs.bufp != nil || cs.buf != nil
	}
	if held() {
		t.Error("the stream keeps a buffer between messages, drained")
	}
	close(more)
	testutil.WaitFor(t, hangBound, "the rest received (unread)", func() bool {
		cc.mu.Lock()
		defer cc.mu.Unlock()
		return cs.remoteDone
	})
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if got = append(got, rest...); !bytes.Equal(got, body) {
		t.Errorf("the body came through the buffer classes changed (%d bytes, want %d)", len(got), size)
	}
	if held() {
		t.Error("the stream keeps its buffer after the body's end")
	}
}

// getStream sends a GET on cc and returns its response, once its head came, and its stream;
// the body is closed and the request ended when t ends.
func getStream(t *testing.T, cc *clientConn) (*http.Response, *clientStream) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), hangBound)
	t.Cleanup(cancel)
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://backend/x", nil)
	cc.ReserveNewRequest()
	resp, err := cc.roundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp, resp.Body.(*clientStream)
}
