package connpool

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"testing"
	"time"
)

// checkedOutOK checks out a conn to a backend that answers "ok".
func checkedOutOK(t *testing.T) (*Pool, *Conn) {
	t.Helper()
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	t.Cleanup(be.Close)
	p := newPool(t, be.Listener.Addr().String(), nil)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := p.Get(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	return p, c
}

// TestFlushWithReadKeepsUnsentRequest: FlushWithRead leaves the request for the response's
// first read to send; a read that fails before sending (a deadline already past) keeps it,
// and BytesWritten counts only what reached the socket, so the proxy's retry rules see
// "nothing sent" until it was.
func TestFlushWithReadKeepsUnsentRequest(t *testing.T) {
	p, c := checkedOutOK(t)
	const req = "GET /x HTTP/1.1\r\nHost: t\r\n\r\n"
	c.W.WriteString(req)
	if err := c.FlushWithRead(); err != nil {
		t.Fatal(err)
	}
	if n := c.BytesWritten(); n != 0 {
		t.Fatalf("BytesWritten after FlushWithRead = %d; want 0 until the read sends it", n)
	}
	c.NetConn().SetReadDeadline(time.Now().Add(-time.Second))
	if _, err := c.R.Peek(1); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Peek past the deadline: %v", err)
	}
	if n := c.BytesWritten(); n != 0 {
		t.Fatalf("BytesWritten after a read that could not send = %d; want 0", n)
	}
	c.NetConn().SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.R, nil)
	if err != nil {
		t.Fatalf("the request kept for the next read was not sent: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" || c.BytesWritten() != int64(len(req)) {
		t.Fatalf("got %d %q, BytesWritten %d; want 200 \"ok\" and %d", resp.StatusCode, body, c.BytesWritten(), len(req))
	}
	p.Release(c, Outcome{Reusable: true, KeepAliveMax: -1})
}

// TestWriteBeforeSendIsRefused: a write through W between FlushWithRead and the read that
// sends the request would overwrite the buffer the pending request lives in; it fails
// instead of putting garbage on the wire, and nothing reaches the backend.
func TestWriteBeforeSendIsRefused(t *testing.T) {
	p, c := checkedOutOK(t)
	c.W.WriteString("GET /x HTTP/1.1\r\nHost: t\r\n\r\n")
	if err := c.FlushWithRead(); err != nil {
		t.Fatal(err)
	}
	c.W.WriteString("GET /y HTTP/1.1\r\nHost: t\r\n\r\n")
	if err := c.W.Flush(); !errors.Is(err, errWriteBeforeSend) {
		t.Fatalf("Flush over a pending request: %v; want errWriteBeforeSend", err)
	}
	if n := c.BytesWritten(); n != 0 {
		t.Fatalf("BytesWritten = %d; want 0", n)
	}
	p.Release(c, Outcome{Reason: CloseRequestError, KeepAliveMax: -1})
}
