package proxy

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/connpool"
	"sluice/internal/reason"
)

// answeringListener answers every request head on every connection with 200 "ok", counts
// the requests, and never closes a connection its client half-closed: the client's socket
// can then refuse to send while the pool's reuse check still finds the connection alive.
func answeringListener(t *testing.T) (addr string, requests *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	requests = new(atomic.Int64)
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, nil)
			wg.Go(func() {
				br := bufio.NewReader(c)
				for {
					line, err := br.ReadSlice('\n')
					if err != nil {
						return // EOF: keep the conn open (closed at cleanup)
					}
					if !bytes.Equal(line, []byte("\r\n")) {
						continue
					}
					requests.Add(1)
					c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"))
				}
			})
		}
	})
	return ln.Addr().String(), requests
}

// TestSendFailureBeforeAnyByteIsRetried: a request without a body is sent with the
// response's first read (connpool.Conn.FlushWithRead); when that send fails before a byte
// left, the backend cannot have seen the request, so even a POST is retried on another
// connection, as a failed write of the request always was. Here the reused connection's
// own socket can no longer send (shut for writing) while the reuse check finds it alive.
func TestSendFailureBeforeAnyByteIsRetried(t *testing.T) {
	addr, requests := answeringListener(t)
	var mu sync.Mutex
	var dialed []*net.TCPConn
	opts := connpool.Options{UnsafeMaxIdle: 10 * time.Second, Dial: func(ctx context.Context, network, a string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, a)
		if err == nil {
			mu.Lock()
			dialed = append(dialed, c.(*net.TCPConn))
			mu.Unlock()
		}
		return c, err
	}}
	rt, _ := testRoute(t, addr, opts, nil)
	serve := func(path string) (*recorder, *Record) {
		rd := newRecorder(t, context.Background(), "POST "+path+" HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "")
		rec := new(Record)
		testProxy().Serve(rd, rt, rec)
		return rd, rec
	}
	if rd, rec := serve("/first"); rd.status != 200 || rec.NumAttempts != 1 {
		t.Fatalf("first POST: %d after %d attempts (%v)", rd.status, rec.NumAttempts, rec.Err)
	}
	mu.Lock()
	if len(dialed) != 1 {
		t.Fatalf("dialed %d conns for one request", len(dialed))
	}
	dialed[0].CloseWrite()
	mu.Unlock()
	time.Sleep(20 * time.Millisecond) // let the FIN reach the backend (which keeps the conn open)

	rd, rec := serve("/second")
	if rd.status != 200 || rec.NumAttempts != 2 {
		t.Fatalf("POST on a conn that cannot send: %d after %d attempts, reason %q (%v); want 200 after a retry on a new conn",
			rd.status, rec.NumAttempts, rec.Reason, rec.Err)
	}
	if a := rec.Attempts[0]; !a.Reused || a.Outcome != string(reason.ResetBeforeSend) {
		t.Errorf("first attempt: reused %v, outcome %q; want the reused conn, %q", a.Reused, a.Outcome, reason.ResetBeforeSend)
	}
	if n := requests.Load(); n != 2 {
		t.Errorf("backend saw %d requests; want 2 (each POST once)", n)
	}
}
