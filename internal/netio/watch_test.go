package netio

import (
	"errors"
	"io"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// watchUntil returns a watch that counts its calls and says to stop once stop is set.
func watchUntil(calls *atomic.Int64, stop *atomic.Bool) func() bool {
	return func() bool {
		calls.Add(1)
		return !stop.Load()
	}
}

// A write to a peer that stopped reading waits in steps; the watch stops it, the call reports
// what it wrote, and the connection's armed deadline is back on the socket afterwards.
func TestWatchStopsABlockedWrite(t *testing.T) {
	c, _ := pair(t)
	var calls atomic.Int64
	var stop atomic.Bool
	c.Watch(watchUntil(&calls, &stop), 5*time.Millisecond, 20*time.Millisecond)
	c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	time.AfterFunc(200*time.Millisecond, func() { stop.Store(true) })
	start := time.Now()
	n, err := c.Write(make([]byte, 64<<20))
	if !errors.Is(err, ErrWatchStopped) || n == 0 || n >= 64<<20 {
		t.Fatalf("Write = %d, %v; want a short count and ErrWatchStopped", n, err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("stopped after %v; the watch said stop at 200ms", took)
	}
	// Steps of 5, 10, 20, 20, ... ms over ~200ms: about 11 calls; far fewer than 5ms steps
	// would make (40). Under the race detector filling the socket buffer can itself take the
	// 200ms, so the first step may already see the stop: the floor is one call.
	if k := calls.Load(); k < 1 || k > 30 {
		t.Errorf("watch ran %d times in ~200ms with steps doubling from 5ms to 20ms", k)
	}
	c.Watch(nil, 0, 0)
	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := c.Write(make([]byte, 64<<20)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("unwatched Write after a stop = %v; want the deadline", err)
	}
}

// The armed deadline still bounds a watched wait whose watch never says stop.
func TestWatchKeepsTheDeadline(t *testing.T) {
	c, _ := pair(t)
	var calls atomic.Int64
	var stop atomic.Bool
	c.Watch(watchUntil(&calls, &stop), 5*time.Millisecond, 10*time.Millisecond)
	c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	start := time.Now()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read = %v; want the deadline", err)
	}
	if took := time.Since(start); took < 140*time.Millisecond || took > 2*time.Second {
		t.Errorf("Read returned after %v; the deadline was 150ms", took)
	}
	if calls.Load() == 0 {
		t.Error("the watch never ran during a 150ms wait")
	}
}

// A watched read that need not wait never runs the watch, and a stopped read leaves the
// connection readable.
func TestWatchedReadWithoutWait(t *testing.T) {
	c, sc := pair(t)
	var calls atomic.Int64
	var stop atomic.Bool
	stop.Store(true)
	c.Watch(watchUntil(&calls, &stop), time.Millisecond, time.Millisecond)
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, ErrWatchStopped) {
		t.Fatalf("Read with nothing to read = %v; want ErrWatchStopped", err)
	}
	sc.Write([]byte("ab"))
	testWaitReadable(t, c)
	calls.Store(0)
	buf := make([]byte, 2)
	if n, err := io.ReadFull(c, buf); n != 2 || err != nil || string(buf) != "ab" {
		t.Fatalf("Read after a stop = %d %q %v", n, buf, err)
	}
	if calls.Load() != 0 {
		t.Errorf("the watch ran %d times for bytes already there", calls.Load())
	}
}

// testWaitReadable waits until c has bytes to read.
func testWaitReadable(t *testing.T, c *Conn) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if err := c.WaitReadable(); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Time{})
}

// A splice whose destination stopped reading is stopped by the destination's watch.
func TestWatchStopsASplice(t *testing.T) {
	if !SpliceSupported {
		t.Skip("no splice(2) here")
	}
	src, dst, sp, _ := splicePair(t)
	go func() { sp.Write(make([]byte, 64<<20)) }()
	var calls atomic.Int64
	var stop atomic.Bool
	dst.Watch(watchUntil(&calls, &stop), 5*time.Millisecond, 20*time.Millisecond)
	time.AfterFunc(100*time.Millisecond, func() { stop.Store(true) })
	s, started := Splice(dst, src, 64<<20, nil, func() { dst.ExtendWrite(time.Now().Add(10*time.Second), 0) })
	if !started || !errors.Is(s.WriteErr, ErrWatchStopped) || s.Moved >= 64<<20 {
		t.Fatalf("Splice = %+v, %v; want a short move stopped by the watch", s, started)
	}
}
