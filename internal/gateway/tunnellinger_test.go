package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestTunnelStopLingers: a stop (shutdown, a reload that changed the route) closes a
// WebSocket tunnel whose client keeps sending past the 1001 lingeringly: the client reads
// the Close frame and then a clean end, and its writes meet no reset meanwhile. Closed at
// once, with the client's frames unread, the gateway's socket answered them with a reset,
// which can destroy the Close frame before the client reads it. Several runs of each: a
// reset while reading came in some runs only.
func TestTunnelStopLingers(t *testing.T) {
	t.Cleanup(func() {
		if s := testutil.Leaked(5*time.Second, func(g string) bool { return strings.Contains(g, "proxy.(*tunnel)") }); s != "" {
			t.Errorf("tunnel goroutines left:\n%s", s)
		}
	})
	const cfg = `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: ws, targets: [{address: {{b}}}]}]
routes: [{id: ws, upstream: ws, tunnel: {idle_timeout: %s}}]
shutdown_grace: 50ms
`
	for _, tc := range []struct {
		name string
		stop func(t *testing.T, tg *testGateway, vars map[string]string)
		want string
	}{
		{name: "shutdown", want: "shutdown", stop: func(t *testing.T, tg *testGateway, _ map[string]string) {
			ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer cancel()
			tg.gw.Shutdown(ctx)
		}},
		{name: "route_changed", want: "route_changed", stop: func(t *testing.T, tg *testGateway, vars map[string]string) {
			if err := tg.gw.Apply(mustParse(t, strings.Replace(cfg, "%s", "2h", 1), vars)); err != nil {
				t.Error(err)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for run := range 8 {
				addr := rawWSBackend(t, func(c net.Conn, br *bufio.Reader) {
					c.SetReadDeadline(time.Now().Add(10 * time.Second))
					io.Copy(io.Discard, br) // until the gateway's FIN after its 1001
				})
				vars := map[string]string{"b": addr}
				tg := startGateway(t, strings.Replace(cfg, "%s", "1h", 1), vars)
				if got, err := stopWhileSending(t, tg, func() { tc.stop(t, tg, vars) }); err != nil || got != "\x88\x02\x03\xe9" {
					t.Fatalf("run %d: client read % x, then %v; want the 1001 Close frame, then a clean end", run, got, err)
				}
				if l := tg.accessLines(1)[0]; l["tunnel_closed"] != tc.want {
					t.Errorf("run %d: tunnel_closed = %v, want %s", run, l["tunnel_closed"], tc.want)
				}
			}
		})
	}
}

// stopWhileSending opens a WebSocket tunnel through tg, sends masked frames on it without a
// pause, stops the tunnel with stop, and returns what the client read after the stop and the
// error that ended its reads (nil: a clean end), or the error of a write that failed up to
// 100ms after that end: a client library that meets a reset writing reports an abnormal
// close (1006), whatever Close frame waits unread. Then the client stops sending and closes.
func stopWhileSending(t *testing.T, tg *testGateway, stop func()) (string, error) {
	t.Helper()
	c, br := rawWebSocket(t, tg)
	frame := append([]byte{0x82, 0x80 | 125, 0, 0, 0, 0}, make([]byte, 125)...) // binary, masked, zero key
	done := make(chan struct{})
	var wg sync.WaitGroup
	var werr atomic.Pointer[error]
	wg.Go(func() {
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := c.Write(frame); err != nil {
				werr.Store(&err)
				return
			}
		}
	})
	testutil.WaitFor(t, 5*time.Second, "the client's frames to flow", func() bool {
		ts := tg.gw.proxy.Tunnels()
		return len(ts) == 1 && ts[0].BytesUp > 10*int64(len(frame))
	})
	stopped := make(chan struct{})
	go func() { defer close(stopped); stop() }()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(br)
	// The writer runs on a little after the reader saw the close, as a client's writer does
	// until its reader's news reaches it.
	time.Sleep(100 * time.Millisecond)
	if e := werr.Load(); e != nil && err == nil {
		err = fmt.Errorf("a write failed: %w", *e)
	}
	close(done)
	wg.Wait()
	c.Close()
	<-stopped
	return string(got), err
}
