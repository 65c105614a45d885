package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"
)

// A client connection idle past the server's short wait continues on a fresh goroutine (a
// small stack while it idles). It must go on serving requests, and the goroutine it leaves
// must end: the count stays flat over many idle gaps.
func TestIdleConnectionHandOverServesAndDoesNotLeak(t *testing.T) {
	be := echoBackend(t, "a")
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, idle_timeout: 5s}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": hostport(be)})
	conn, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	br := bufio.NewReader(conn)
	get := func(i int) {
		t.Helper()
		fmt.Fprintf(conn, "GET /idle/%d HTTP/1.1\r\nHost: t\r\n\r\n", i)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("request %d after an idle gap: %v", i, err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		mustStatus(t, resp, 200)
	}
	get(0)
	time.Sleep(50 * time.Millisecond)
	base := runtime.NumGoroutine()
	for i := 1; i <= 20; i++ {
		time.Sleep(25 * time.Millisecond) // > the 10 ms wait with buffers: a hand-over each time
		get(i)
	}
	time.Sleep(50 * time.Millisecond)
	if n := runtime.NumGoroutine(); n > base+3 {
		t.Fatalf("goroutines grew from %d to %d over 20 idle hand-overs on one connection", base, n)
	}
	// The handed-over wait still honours Shutdown promptly.
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		done <- tg.gw.Shutdown(ctx)
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("shutdown: %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("shutdown still waiting 3 s with one idle (handed-over) client connection")
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("the idle connection was not closed by shutdown")
	}
}
