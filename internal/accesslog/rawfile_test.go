package accesslog

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// rawOutput is an Output for a temporary file written with the raw write, and the file's
// path; the test is skipped where the temporary directory is not on a local filesystem.
func rawOutput(t *testing.T) (*Output, *rawFile, string) {
	t.Helper()
	if runtime.GOMAXPROCS(0) < 2 { // the raw write needs two Ps
		t.Cleanup(func() { runtime.GOMAXPROCS(1) })
		runtime.GOMAXPROCS(2)
	}
	o, path := openFile(t)
	r, ok := o.w.(*rawFile)
	if !ok {
		o.Close()
		t.Skipf("%s: not a local filesystem, written with %T", path, o.w)
	}
	return o, r, path
}

// TestRawWriteOnlyForLocalFiles: a regular file on a local filesystem is written with the raw
// write; a device (/dev/full, /dev/null) with os.File.Write, as are stdout and stderr.
func TestRawWriteOnlyForLocalFiles(t *testing.T) {
	o, _, _ := rawOutput(t)
	o.Close()
	for _, dev := range []string{"/dev/full", "/dev/null"} {
		o, err := OpenOutput(dev, nil, nil)
		if err != nil {
			t.Logf("%s: %v", dev, err)
			continue
		}
		if _, raw := o.w.(*rawFile); raw {
			t.Errorf("%s is written with the raw write", dev)
		}
		o.Close()
	}
}

// sleepEveryWrite makes every raw write look as if its thread slept in the kernel (as a
// write throttled by writeback or stalled on a disk does), until the test ends.
func sleepEveryWrite(t *testing.T) {
	t.Helper()
	old := voluntarySwitches
	t.Cleanup(func() { voluntarySwitches = old })
	var n int64
	voluntarySwitches = func(*syscall.Rusage) (int64, bool) { n++; return n, true }
}

// TestRawWriteKeepsEveryLine: many batches through the raw write, through os.File.Write
// after a slow write that slept, and through the raw write again once slowRetry has passed,
// reach the file whole, in order; a slow write that did not sleep (its thread was
// preempted) keeps the raw write.
func TestRawWriteKeepsEveryLine(t *testing.T) {
	oldWrite, oldRetry, oldSwitches := slowWrite, slowRetry, voluntarySwitches
	t.Cleanup(func() { slowWrite, slowRetry, voluntarySwitches = oldWrite, oldRetry, oldSwitches })
	for _, c := range []struct {
		name      string
		slowWrite time.Duration
		slowRetry time.Duration
		sleeps    bool // every write slept in the kernel; else none did
		fallback  bool // the file is on os.File.Write when the lines are done
		rawAgain  bool // raw writes (slow ones, here) after the first half of the lines
	}{
		{"raw", time.Hour, time.Hour, true, false, false},
		{"slow", 0, time.Hour, true, true, false},      // the first write is slow: os.File.Write after it
		{"slow then retried", 0, 0, true, false, true}, // each write is slow, and retried at once
		{"slow, preempted", 0, time.Hour, false, false, false},
	} {
		slowWrite, slowRetry = c.slowWrite, c.slowRetry
		var sleeps int64
		voluntarySwitches = func(*syscall.Rusage) (int64, bool) {
			if c.sleeps {
				sleeps++
			}
			return sleeps, true
		}
		o, r, path := rawOutput(t)
		l := newLogger(io.Discard, time.Hour)
		l.SetOutput(o)
		const n = 4 * BatchSize / 60 // lines of 64 bytes: over four batches
		p := "/" + strings.Repeat("r", 39)
		var want strings.Builder
		var mid time.Time
		for i := range n {
			if i == n/2 {
				mid = r.slowUntil
			}
			l.Write(l.Begin().Int("n", int64(i)).Str("p", p))
			want.WriteString(`{"n":` + strconv.Itoa(i) + `,"p":"` + p + `"}` + "\n")
		}
		if fallback := time.Now().Before(r.slowUntil); fallback != c.fallback {
			t.Errorf("%s: on os.File.Write: %v, want %v", c.name, fallback, c.fallback)
		}
		if again := r.slowUntil.After(mid); again != c.rawAgain {
			t.Errorf("%s: raw writes in the second half: %v, want %v", c.name, again, c.rawAgain)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, path); got != want.String() {
			t.Errorf("%s: file has %d bytes, want %d; lines lost, cut or reordered", c.name, len(got), want.Len())
		}
		if st := l.Stats(); st.Written != n || st.Dropped != 0 {
			t.Errorf("%s: stats %+v, want %d written", c.name, st, n)
		}
	}
}

// TestRawWriteNotWithOneP: with GOMAXPROCS=1 every write is os.File.Write (a stalled raw
// write would stop the whole process). Seen through slowWrite 0: a raw write would be slow
// and set slowUntil.
func TestRawWriteNotWithOneP(t *testing.T) {
	oldWrite := slowWrite
	t.Cleanup(func() { slowWrite = oldWrite })
	slowWrite = 0
	sleepEveryWrite(t)
	o, r, path := rawOutput(t)
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	if _, err := r.Write([]byte("a\n")); err != nil {
		t.Fatal(err)
	}
	if !r.slowUntil.IsZero() {
		t.Error("a raw write was made with one P")
	}
	runtime.GOMAXPROCS(2)
	if _, err := r.Write([]byte("b\n")); err != nil {
		t.Fatal(err)
	}
	if r.slowUntil.IsZero() {
		t.Error("no raw write with two Ps")
	}
	o.Close()
	if got := readFile(t, path); got != "a\nb\n" {
		t.Errorf("file has %q", got)
	}
}

// TestVoluntarySwitchesCountSleeps: the count that tells a write that slept from one that
// was preempted moves when the thread sleeps, and stays while it computes (preempted or
// not: preemption is an involuntary switch).
func TestVoluntarySwitchesCountSleeps(t *testing.T) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	var ru syscall.Rusage
	before, ok := voluntarySwitches(&ru)
	if !ok {
		t.Skip("getrusage(RUSAGE_THREAD) failed")
	}
	time.Sleep(2 * time.Millisecond) // the locked thread sleeps on a futex with its goroutine
	slept, _ := voluntarySwitches(&ru)
	if slept == before {
		t.Errorf("voluntary switches %d before a sleep and after", before)
	}
	// Computing must not count. The runtime can still park this thread while it computes
	// (a garbage collection's stop, which other tests' goroutines can start): collection is
	// off for the check, and it gets three tries, one of which must see no switch.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	x := uint64(1)
	var from, to int64
	for range 3 {
		from, _ = voluntarySwitches(&ru)
		for end := time.Now().Add(5 * time.Millisecond); time.Now().Before(end); {
			for range 1000 {
				x = x*6364136223846793005 + 1442695040888963407
			}
		}
		if to, _ = voluntarySwitches(&ru); to == from {
			return
		}
	}
	t.Errorf("voluntary switches %d before computing for 5 ms, %d after, in each of three tries (x %d)", from, to, x)
}

// TestRawWriteErrorCounted: a raw write that fails (here a descriptor opened read-only:
// EBADF) loses its batch's lines counted and reported like a failed os.File.Write, and the
// error names the file.
func TestRawWriteErrorCounted(t *testing.T) {
	path := filepath.Join(t.TempDir(), "access.log")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	w, ok := fileWriter(f).(*rawFile)
	if !ok {
		f.Close()
		t.Skipf("%s: not a local filesystem", path)
	}
	var errLog bytes.Buffer
	l := newLogger(io.Discard, time.Hour)
	l.SetErrorLog(slog.New(slog.NewJSONHandler(&errLog, nil)))
	l.SetOutput(&Output{dest: path, w: w, file: f})
	writeLine(l, "/a")
	writeLine(l, "/b")
	l.Flush()
	if st := l.Stats(); st.Dropped != 2 || st.Written != 0 || st.WriteErrors != 1 {
		t.Errorf("stats %+v, want 2 dropped, 1 write error", st)
	}
	if s := errLog.String(); !strings.Contains(s, "bad file descriptor") || !strings.Contains(s, path) {
		t.Errorf("error log does not say what failed where: %s", s)
	}
	l.Close()
}

// TestRawWriteAllocatesNothing: a batch written to a file allocates nothing (the request
// that fills a batch writes it).
func TestRawWriteAllocatesNothing(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	o, r, _ := rawOutput(t)
	defer o.Close()
	batch := bytes.Repeat([]byte(`{"path":"/x"}`+"\n"), BatchSize/14)
	if a := testing.AllocsPerRun(50, func() {
		if _, err := r.Write(batch); err != nil {
			t.Fatal(err)
		}
	}); a != 0 {
		t.Errorf("%.2f allocations per batch write, want 0", a)
	}
}
