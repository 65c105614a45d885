package gateway

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// A client connection idle past the server's short wait continues on a fresh goroutine (a
// small stack while it idles). It must go on serving requests, and the goroutine it leaves
// must end: the count stays flat over many idle gaps.
func TestIdleConnectionHandOverServesAndDoesNotLeak(t *testing.T) {
	tg := echoGateway(t, "idle_timeout: 5s")
	conn := openConn(t, tg.addr)
	get := func(i int) {
		t.Helper()
		mustStatus(t, conn.get(fmt.Sprintf("/idle/%d", i)), 200)
	}
	get(0)
	time.Sleep(50 * time.Millisecond) // idle past the short wait: base counts the handed-over state
	base := runtime.NumGoroutine()
	for i := 1; i <= 20; i++ {
		time.Sleep(25 * time.Millisecond) // > the 10 ms wait with buffers: a hand-over each time
		get(i)
	}
	// The goroutines left by the hand-overs end on their own: wait for the count to come down.
	testutil.WaitFor(t, 2*time.Second, fmt.Sprintf("goroutines back to %d + 3 after 20 idle hand-overs on one connection", base),
		func() bool { return runtime.NumGoroutine() <= base+3 })
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
	if _, err := conn.br.ReadByte(); err == nil {
		t.Fatal("the idle connection was not closed by shutdown")
	}
}
