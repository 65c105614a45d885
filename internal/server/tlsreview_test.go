package server

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"testing"
	"time"

	"sluice/internal/h1"
	"sluice/internal/netio"
	"sluice/internal/testutil"
)

// earlyStopWatch answers 200 "ok" after a body wait that its watch stopped at once (an
// early response), leaving the body unread: the connection then closes with a lingering
// close. It reports TLS failures as tlsWatch does.
type earlyStopWatch struct {
	tlsWatch
	stopped chan error
}

func (w *earlyStopWatch) ServeH1(ex *Exchange) {
	ex.WatchBody(func() bool { return false }, time.Millisecond, time.Millisecond)
	_, err := ex.ReadBody(make([]byte, 16))
	ex.WatchBody(nil, 0, 0)
	w.stopped <- err
	var h h1.Header
	ex.WriteHead(200, nil, &h, 2)
	ex.Write([]byte("ok"))
}

// TestTLSFailureAfterWatchStop: a body wait stopped by its watch (an early response) is not
// the TLS failure the connection ends on: a client that then sends a forged record during
// the lingering close is reported bad_record_mac, and one that closes is reported nothing.
// The stop reaches crypto/tls as a temporary error; kept as the connection's first failure,
// it hid what really ended the connection.
func TestTLSFailureAfterWatchStop(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, tc := range []struct {
		name string
		send func(c *tls13Records)
		want []string
	}{
		{name: "record with a bad MAC", send: func(c *tls13Records) {
			c.raw.Write(append([]byte{23, 3, 3, 0, 20}, make([]byte, 20)...))
		}, want: []string{"bad_record_mac"}},
		{name: "FIN", send: func(c *tls13Records) { c.raw.(*net.TCPConn).CloseWrite() }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			st := Settings{Name: "t", ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
				IdleTimeout: time.Minute, HandshakeTimeout: 5 * time.Second, Limits: h1.Limits{MaxHeaderBytes: 65536, MaxHeaders: 100},
				TLS: ca.ServerConfig(t, "srv.test")}
			w := &earlyStopWatch{stopped: make(chan error, 1)}
			srv := New(ln, st, w, slog.New(slog.NewTextHandler(io.Discard, nil)))
			go srv.Serve()
			t.Cleanup(func() { srv.Shutdown(t.Context()) })

			c := dialTLS13Records(t, ca, ln.Addr().String())
			c.write(t, 23, []byte("PUT / HTTP/1.1\r\nHost: srv.test\r\nContent-Length: 100\r\n\r\n"))
			if err := <-w.stopped; !errors.Is(err, netio.ErrWatchStopped) {
				t.Fatalf("the watched body read: %v, want netio.ErrWatchStopped", err)
			}
			c.response(t)
			tc.send(c)
			io.Copy(io.Discard, c.raw) // the close_notify, any alert, then the close
			testutil.WaitFor(t, 5*time.Second, "the connection gone", func() bool { return srv.Active() == 0 })
			if got := w.take(); !slices.Equal(got, tc.want) {
				t.Errorf("reported %q, want %q", got, tc.want)
			}
		})
	}
}

// TestLingerDuringShutdown: a connection in its lingering close after a refusal (505), with
// a client that goes on sending and never closes, does not hold Shutdown past the linger's
// time bound, nor past a shorter grace: Shutdown forces it closed when its grace ends.
func TestLingerDuringShutdown(t *testing.T) {
	for _, tc := range []struct {
		name    string
		grace   time.Duration
		wantErr error
		within  time.Duration // Shutdown returns within this (the linger alone: lingerTime)
	}{
		{name: "linger ends first", grace: 30 * time.Second, within: 5 * lingerTime},
		{name: "grace ends first", grace: 50 * time.Millisecond, wantErr: context.DeadlineExceeded, within: lingerTime * 9 / 10},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			st := Settings{Name: "t", ReadHeaderTimeout: 30 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
				IdleTimeout: 30 * time.Second, Limits: h1.Limits{MaxHeaderBytes: 65536, MaxHeaders: 100}}
			srv := New(ln, st, okHandler{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			go srv.Serve()
			nc, err := net.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer nc.Close()
			nc.SetDeadline(time.Now().Add(30 * time.Second))
			if _, err := io.WriteString(nc, "GET / HTTP/1.7\r\nHost: h\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			resp, err := http.ReadResponse(bufio.NewReader(nc), nil)
			if err != nil || resp.StatusCode != 505 {
				t.Fatalf("answer %v, %v; want 505", resp, err)
			}
			stop := make(chan struct{})
			defer close(stop)
			go func() { // trickles for ever: the linger's time bound or the shutdown ends it
				for {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
					if _, err := nc.Write([]byte("x")); err != nil {
						return
					}
				}
			}()
			ctx, cancel := context.WithTimeout(context.Background(), tc.grace)
			defer cancel()
			start := time.Now()
			err = srv.Shutdown(ctx)
			took := time.Since(start)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil && err != nil) {
				t.Errorf("Shutdown: %v, want %v", err, tc.wantErr)
			}
			if took > tc.within {
				t.Errorf("Shutdown took %v, want at most %v", took, tc.within)
			}
			if srv.Active() != 0 {
				t.Errorf("%d connections open after Shutdown", srv.Active())
			}
		})
	}
}
