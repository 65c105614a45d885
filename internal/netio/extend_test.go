package netio

import (
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

func TestFits(t *testing.T) {
	base := time.Now()
	for _, tc := range []struct {
		name  string
		armed time.Time
		t     time.Time
		late  time.Duration
		want  bool
	}{
		{"both none", time.Time{}, time.Time{}, 0, true},
		{"none armed, deadline asked", time.Time{}, base, time.Second, false},
		{"armed, none asked", base, time.Time{}, time.Second, false},
		{"armed at the deadline", base, base, time.Second, true},
		{"armed within late", base.Add(300 * time.Millisecond), base, time.Second, true},
		{"armed at deadline+late", base.Add(time.Second), base, time.Second, true},
		{"armed beyond late", base.Add(time.Second + 1), base, time.Second, false},
		{"armed before the deadline", base.Add(-1), base, time.Second, false},
		{"a past wake-up", time.Unix(1, 0), base, time.Second, false},
	} {
		if got := fits(tc.armed, tc.t, tc.late); got != tc.want {
			t.Errorf("%s: fits = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// readTimesOutAfter reads from c, which gets no data, and returns how long the read took;
// it fails unless the read ended in a deadline error.
func readTimesOutAfter(t *testing.T, c *Conn) time.Duration {
	t.Helper()
	watchdog := time.AfterFunc(5*time.Second, func() { c.Close() }) // no deadline armed: fail, not hang
	defer watchdog.Stop()
	start := time.Now()
	_, err := c.Read(make([]byte, 1))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want a deadline error", err)
	}
	return time.Since(start)
}

func TestExtendReadFiresWithinItsWindow(t *testing.T) {
	c, _ := pair(t)
	c.ExtendRead(time.Now().Add(100*time.Millisecond), 50*time.Millisecond)
	// Re-arming a moment later keeps the armed deadline (it fits the new window).
	time.Sleep(20 * time.Millisecond) // the moment under test, not synchronisation
	c.ExtendRead(time.Now().Add(100*time.Millisecond), 50*time.Millisecond)
	if got := readTimesOutAfter(t, c); got < 80*time.Millisecond || got > 400*time.Millisecond {
		t.Errorf("read timed out after %v, want 100-150 ms after the last arming", got)
	}
}

func TestExtendReadShortensAndRearmsAfterExactDeadlines(t *testing.T) {
	c, sc := pair(t)
	// A far deadline does not hide a nearer one asked later.
	c.ExtendRead(time.Now().Add(time.Hour), time.Minute)
	c.ExtendRead(time.Now().Add(50*time.Millisecond), 10*time.Millisecond)
	if got := readTimesOutAfter(t, c); got > 400*time.Millisecond {
		t.Errorf("read timed out after %v, want ~50-60 ms", got)
	}
	// An exact deadline in the past (Shutdown's wake-up) is replaced by the next ExtendRead.
	c.SetReadDeadline(time.Unix(1, 0))
	c.ExtendRead(time.Now().Add(time.Hour), time.Minute)
	go func() {
		time.Sleep(50 * time.Millisecond) // a late byte: the Read waits, past the stale deadline
		sc.Write([]byte("x"))
	}()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("Read after re-arming: %v", err)
	}
	// A zero deadline clears the armed one.
	c.ExtendRead(time.Now().Add(20*time.Millisecond), 0)
	c.ExtendRead(time.Time{}, 0)
	go func() {
		time.Sleep(100 * time.Millisecond) // a late byte: the Read waits, past the cleared 20 ms
		sc.Write([]byte("y"))
	}()
	if _, err := c.Read(make([]byte, 1)); err != nil {
		t.Fatalf("Read after clearing the deadline: %v", err)
	}
}

func TestExtendWrite(t *testing.T) {
	c, _ := pair(t)
	c.ExtendWrite(time.Now().Add(50*time.Millisecond), 10*time.Millisecond)
	// The peer never reads: writes fill the socket buffers, then time out.
	buf := make([]byte, 1<<20)
	start := time.Now()
	var err error
	for i := 0; i < 256 && err == nil; i++ {
		_, err = c.Write(buf)
	}
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write: %v, want a deadline error", err)
	}
	if got := time.Since(start); got > time.Second {
		t.Errorf("write timed out after %v, want ~50-60 ms", got)
	}
}

func TestExtendOnPlainConnSetsExactly(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ExtendRead(a, time.Now().Add(30*time.Millisecond), time.Hour)
	start := time.Now()
	if _, err := a.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v, want a deadline error", err)
	}
	if got := time.Since(start); got > 500*time.Millisecond {
		t.Errorf("a non-Extender connection timed out after %v: the lateness must not apply", got)
	}
}

func TestExtendKeepsAFittingDeadline(t *testing.T) {
	c, _ := pair(t)
	now := time.Now()
	c.ExtendRead(now.Add(time.Second), 100*time.Millisecond)
	armed := c.rdl
	if want := now.Add(time.Second + 100*time.Millisecond); !armed.Equal(want) {
		t.Fatalf("armed %v, want t+late %v", armed, want)
	}
	c.ExtendRead(now.Add(time.Second+50*time.Millisecond), 100*time.Millisecond)
	if !c.rdl.Equal(armed) {
		t.Errorf("a deadline asked within the window re-armed: %v -> %v", armed, c.rdl)
	}
	c.ExtendRead(now.Add(time.Second+150*time.Millisecond), 100*time.Millisecond)
	if c.rdl.Equal(armed) {
		t.Errorf("a deadline asked past the armed one did not re-arm")
	}
	c.ExtendWrite(now.Add(time.Second), 100*time.Millisecond)
	w := c.wdl
	c.ExtendWrite(now.Add(time.Second+10*time.Millisecond), 100*time.Millisecond)
	if !c.wdl.Equal(w) {
		t.Errorf("write: a deadline asked within the window re-armed: %v -> %v", w, c.wdl)
	}
}

func TestArmReadAndArmWrite(t *testing.T) {
	c, _ := pair(t)
	before := time.Now()
	ArmRead(c, time.Second)
	if lo, hi := before.Add(time.Second), time.Now().Add(time.Second+Slack(time.Second)); c.rdl.Before(lo) || c.rdl.After(hi) {
		t.Errorf("ArmRead(1s) armed %v, want within [now+1s, now+1s+Slack]", c.rdl.Sub(before))
	}
	ArmRead(c, 0)
	if !c.rdl.IsZero() {
		t.Errorf("ArmRead(0) left %v armed, want no deadline", c.rdl)
	}
	ArmWrite(c, time.Second)
	if c.wdl.Before(before.Add(time.Second)) {
		t.Errorf("ArmWrite(1s) armed %v, want at least now+1s", c.wdl.Sub(before))
	}
	ArmWrite(c, -1)
	if !c.wdl.IsZero() {
		t.Errorf("ArmWrite(-1) left %v armed, want no deadline", c.wdl)
	}
}
