package h2pool

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// countConn counts the Write calls on a connection.
type countConn struct {
	net.Conn
	writes *atomic.Int64
}

func (c countConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// heldBody is a request body held in memory, as the proxy's is when it read it whole.
type heldBody struct{ *strings.Reader }

func (heldBody) Close() error { return nil }
func (heldBody) Held() bool   { return true }

// newClientTestPool starts an h2c Go server with h and a pool whose connections count their
// writes in writes.
func newClientTestPool(t *testing.T, h http.HandlerFunc, writes *atomic.Int64) *Pool {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &protos
	srv.Start()
	t.Cleanup(srv.Close)
	addr := srv.Listener.Addr().String()
	o := testOptions()
	o.Auto = true
	o.Dial = func(ctx context.Context) (net.Conn, string, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, "", err
		}
		return countConn{c, writes}, ALPNH2, nil
	}
	return newPool(t, addr, o)
}

// roundTrip sends req through p; the stream's Done comes at the test's end.
func roundTrip(t *testing.T, p *Pool, req *http.Request) *http.Response {
	t.Helper()
	a := new(Attempt)
	resp, err := p.RoundTrip(req, a)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Done(a) })
	return resp
}

// TestClientOneWriteForSmallBody: a request whose small body is held goes out in one write
// (HEADERS and DATA with END_STREAM), and its response's trailers come with the body's end.
func TestClientOneWriteForSmallBody(t *testing.T) {
	var writes atomic.Int64
	p := newClientTestPool(t, func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("Trailer", "Grpc-Status")
		w.Write(append([]byte("echo "), b...))
		w.Header().Set("Grpc-Status", "0")
	}, &writes)
	call := func(body string) (string, http.Header) {
		req, _ := http.NewRequest("POST", "http://"+p.Addr()+"/unary", nil)
		req.Body, req.ContentLength = heldBody{strings.NewReader(body)}, int64(len(body))
		resp := roundTrip(t, p, req)
		defer resp.Body.Close()
		got, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(got), resp.Trailer
	}
	call("warm") // the connection's preface, SETTINGS and their ACKs
	before := writes.Load()
	got, tr := call("hello")
	if n := writes.Load() - before; n != 1 {
		t.Errorf("%d writes for a unary call; want 1 (HEADERS and DATA together)", n)
	}
	if got != "echo hello" || tr.Get("Grpc-Status") != "0" {
		t.Errorf("got %q, trailers %v; want the echo and grpc-status 0", got, tr)
	}
}

// TestClientStreamsBothWays: a streamed request body larger than the peer's windows is sent
// whole (waiting for its WINDOW_UPDATEs), and a response larger than the client's stream
// window is read whole (the client gives the window back as it reads).
func TestClientStreamsBothWays(t *testing.T) {
	var writes atomic.Int64
	p := newClientTestPool(t, func(w http.ResponseWriter, r *http.Request) {
		n, _ := io.Copy(io.Discard, r.Body)
		w.Header().Set("X-Got", itoa(n))
		chunk := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
		for range 160 {                                         // 10 MiB, past the 4 MiB stream window
			w.Write(chunk)
		}
	}, &writes)
	pr, pw := io.Pipe()
	go func() {
		chunk := bytes.Repeat([]byte("z"), 32<<10)
		for range 64 { // 2 MiB, past the 64 KiB initial windows
			pw.Write(chunk)
		}
		pw.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // a stalled window fails, not hangs
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://"+p.Addr()+"/stream", pr)
	req.ContentLength = -1
	resp := roundTrip(t, p, req)
	defer resp.Body.Close()
	n, err := io.Copy(io.Discard, resp.Body)
	if err != nil || n != 10<<20 || resp.Header.Get("X-Got") != itoa(2<<20) {
		t.Errorf("read %d bytes (%v), server got %s; want %d and %d", n, err, resp.Header.Get("X-Got"), 10<<20, 2<<20)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestClientCancelResets: a request whose context ends while its response streams is reset
// (RST_STREAM CANCEL): the backend's handler sees its request end, and the body read fails.
func TestClientCancelResets(t *testing.T) {
	var writes atomic.Int64
	gone := make(chan struct{})
	p := newClientTestPool(t, func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("first"))
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
			close(gone)
		case <-time.After(30 * time.Second):
		}
	}, &writes)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.Addr()+"/slow", nil)
	resp := roundTrip(t, p, req)
	defer resp.Body.Close()
	buf := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, buf); err != nil {
		t.Fatal(err)
	}
	cancel()
	if _, err := resp.Body.Read(buf); err == nil {
		t.Error("read after cancel succeeded; want the cancellation")
	}
	select {
	case <-gone:
	case <-time.After(20 * time.Second):
		t.Fatal("the backend never saw the stream reset")
	}
}
