package accesslog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// openFile is an Output for a temporary file and the file's path.
func openFile(t *testing.T) (*Output, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "access.log")
	o, err := OpenOutput(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	return o, path
}

// fileLogger is a Logger that writes batches to a file only when a batch is full, on Flush,
// SetOutput and Close (its timer is an hour), and the file's path.
func fileLogger(t *testing.T) (*Logger, string) {
	t.Helper()
	o, path := openFile(t)
	l := newLogger(io.Discard, time.Hour)
	l.SetOutput(o)
	return l, path
}

// TestCloseWritesEveryLineInOrder: 8 goroutines log 3000 numbered lines each, many batches'
// worth; after Close the file holds every line once, whole, and each goroutine's lines in
// the order it wrote them; the counts agree.
func TestCloseWritesEveryLineInOrder(t *testing.T) {
	l, path := fileLogger(t)
	const writers, each = 8, 3000
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				l.Write(l.Begin().Int("w", int64(w)).Int("i", int64(i)).Str("pad", strings.Repeat("x", 100)))
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkOrder(t, readFile(t, path), writers, each)
	if st := l.Stats(); st != (Stats{Written: writers * each}) {
		t.Errorf("stats %+v, want Written %d only", st, writers*each)
	}
}

// countingWriter counts the writes it takes.
type countingWriter struct {
	mu     sync.Mutex
	writes int
	b      bytes.Buffer
}

func (c *countingWriter) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writes++
	return c.b.Write(p)
}

// checkOrder checks that text holds each of writers' lines {"w":W,"i":I,...} for I from 0
// to each-1 once, whole, in order.
func checkOrder(t *testing.T, text string, writers, each int) {
	t.Helper()
	next := make([]int64, writers)
	n := 0
	for line := range strings.Lines(text) {
		var v struct{ W, I int64 }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("line %d is not JSON: %v: %q", n, err, line)
		}
		if v.I != next[v.W] {
			t.Fatalf("writer %d: line %d after line %d", v.W, v.I, next[v.W]-1)
		}
		next[v.W]++
		n++
	}
	if n != writers*each {
		t.Errorf("%d lines, want %d", n, writers*each)
	}
}

// TestLinesAreBatched: a line is not written by the request that logs it, and many lines go
// out in one write: 100 lines reach the destination on Flush (with a timer of an hour
// nothing else writes them), in one write.
func TestLinesAreBatched(t *testing.T) {
	c := &countingWriter{}
	l := newLogger(c, time.Hour)
	defer l.Close()
	for i := range 100 {
		writeLine(l, fmt.Sprint("/", i))
	}
	c.mu.Lock()
	before := c.writes
	c.mu.Unlock()
	l.Flush()
	c.mu.Lock()
	defer c.mu.Unlock()
	if before != 0 || c.writes != 1 || strings.Count(c.b.String(), "\n") != 100 {
		t.Fatalf("%d writes before Flush and %d after, %d lines: want 0, then 1 write of 100 lines",
			before, c.writes, strings.Count(c.b.String(), "\n"))
	}
}

// TestLinesWrittenOnTheTimer: with nothing but the timer to write it, a line reaches the
// file (the timer here is 20 ms; the wait allows for a slow machine).
func TestLinesWrittenOnTheTimer(t *testing.T) {
	o, path := openFile(t)
	l := newLogger(io.Discard, 20*time.Millisecond)
	defer l.Close()
	l.SetOutput(o)
	writeLine(l, "/timer")
	testutil.WaitFor(t, 5*time.Second, "the line in the file", func() bool {
		return strings.Contains(readFile(t, path), `"/timer"`)
	})
}

// TestSetOutputWritesBatchedLinesFirst: lines batched before a switch (a reopen after a
// rotation) go to the old destination, later ones to the new one, none lost.
func TestSetOutputWritesBatchedLinesFirst(t *testing.T) {
	l, path := fileLogger(t)
	writeLine(l, "/before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	writeLine(l, "/after")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if old := readFile(t, path+".1"); old == "" || !strings.Contains(old, `"/before"`) || strings.Contains(old, "/after") {
		t.Errorf("rotated file: %q, want /before only", old)
	}
	if cur := readFile(t, path); !strings.Contains(cur, `"/after"`) || strings.Contains(cur, "/before") {
		t.Errorf("new file: %q, want /after only", cur)
	}
}

// gate is a destination whose writes wait until it opens, to stand for a slow disk.
type gate struct {
	open    chan struct{}
	entered chan struct{} // receives when a write begins
	mu      sync.Mutex
	b       bytes.Buffer
}

func (g *gate) Write(p []byte) (int, error) {
	select {
	case g.entered <- struct{}{}:
	default:
	}
	<-g.open
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.b.Write(p)
}

// TestSlowDestinationHoldsWriters: while the destination takes no writes, 32 goroutines log
// at most about MaxPending bytes between them and then wait (each request that fills a batch
// waits to write it, and beyond MaxPending the others wait to queue theirs); once the
// destination moves, every line arrives, none is dropped.
func TestSlowDestinationHoldsWriters(t *testing.T) {
	g := &gate{open: make(chan struct{}), entered: make(chan struct{}, 1)}
	l := newLogger(g, time.Hour)
	line := strings.Repeat("y", 1000)
	const writers, each = 32, 200 // 6.4 MB in all, six times MaxPending
	var logged atomic.Int64
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				l.Write(l.Begin().Int("w", int64(w)).Int("i", int64(i)).Str("p", line))
				logged.Add(1)
			}
		})
	}
	<-g.entered // the first full batch is being written, and waits
	testutil.WaitFor(t, 5*time.Second, "the writers to wait", func() bool {
		n := logged.Load()
		time.Sleep(50 * time.Millisecond)
		return n == logged.Load()
	})
	// Queued and being written: MaxPending; the current batch: one more; and the line of
	// each writer that is about to write.
	bound := int64((MaxPending+BatchSize)/1000 + writers)
	if n := logged.Load(); n > bound {
		t.Fatalf("%d lines logged while nothing could be written, want at most %d", n, bound)
	}
	close(g.open)
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	checkOrder(t, g.b.String(), writers, each)
	if st := l.Stats(); st.Dropped != 0 || st.Written != writers*each {
		t.Errorf("stats %+v, want %d written, none dropped", st, writers*each)
	}
}

// TestFullDiskCountedAndLogged: writes to /dev/full fail with ENOSPC; the lines are counted
// as dropped, the error is logged once, nothing waits or panics, and after a switch to a
// working file the next lines are written.
func TestFullDiskCountedAndLogged(t *testing.T) {
	full, err := OpenOutput("/dev/full", nil, nil)
	if err != nil {
		t.Skipf("no /dev/full: %v", err)
	}
	var errLog bytes.Buffer
	l := newLogger(io.Discard, time.Hour)
	l.SetErrorLog(slog.New(slog.NewJSONHandler(&errLog, nil)))
	l.SetOutput(full)
	const n = 3 * BatchSize / 100 // several batches of 100-byte lines
	for range n {
		l.Write(l.Begin().Str("p", strings.Repeat("z", 85)))
	}
	l.Flush()
	st := l.Stats()
	if st.Dropped != n || st.Written != 0 || st.WriteErrors < 2 {
		t.Errorf("stats %+v, want %d dropped, 0 written, one error per batch", st, n)
	}
	if c := strings.Count(errLog.String(), "access log write failed"); c != 1 {
		t.Errorf("error log has %d reports, want 1 (rate-limited): %s", c, errLog.String())
	}
	if !strings.Contains(errLog.String(), "no space left on device") {
		t.Errorf("error log does not say why: %s", errLog.String())
	}
	o, path := openFile(t)
	l.SetOutput(o)
	writeLine(l, "/after-full")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, path); !strings.Contains(got, `"/after-full"`) {
		t.Errorf("file after the disk had room: %q", got)
	}
}

// halfWriter takes the first half of its first write and fails it, then takes everything.
type halfWriter struct {
	failed bool
	b      bytes.Buffer
}

func (h *halfWriter) Write(p []byte) (int, error) {
	if !h.failed {
		h.failed = true
		n, _ := h.b.Write(p[:len(p)/2])
		return n, errors.New("disk quota exceeded")
	}
	return h.b.Write(p)
}

// TestFailedWriteMidLine: a write that fails in the middle of a line leaves that line cut; the
// next write starts on a new line, so every later line is whole JSON, and the count of lines
// lost is the cut line and those after it in the failed batch.
func TestFailedWriteMidLine(t *testing.T) {
	h := &halfWriter{}
	l := newLogger(h, time.Hour)
	for i := range 5 {
		writeLine(l, fmt.Sprintf("/first-%d-%s", i, strings.Repeat("a", i))) // the middle falls inside line 2
	}
	l.Flush()
	writeLine(l, "/second")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	var whole, cut int
	for line := range strings.Lines(h.b.String()) {
		if json.Valid([]byte(line)) {
			whole++
		} else {
			cut++
		}
	}
	if !strings.HasSuffix(h.b.String(), `{"path":"/second"}`+"\n") || cut != 1 {
		t.Errorf("written %q: want one cut line, then /second whole on its own line", h.b.String())
	}
	if st := l.Stats(); st.Written != uint64(whole) || st.Dropped != 6-uint64(whole) || st.WriteErrors != 1 {
		t.Errorf("stats %+v with %d whole lines written", st, whole)
	}
}

// TestWriteAfterCloseIsCounted: a line logged after Close (a request finishing past the
// drain) is dropped and counted, not written to a closed file and not a panic.
func TestWriteAfterCloseIsCounted(t *testing.T) {
	l, path := fileLogger(t)
	writeLine(l, "/in-time")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	writeLine(l, "/late")
	if st := l.Stats(); st.Written != 1 || st.Dropped != 1 {
		t.Errorf("stats %+v, want 1 written and 1 dropped", st)
	}
	if got := readFile(t, path); !strings.Contains(got, "/in-time") || strings.Contains(got, "/late") {
		t.Errorf("file: %q", got)
	}
}

// BenchmarkWriteParallel is the request path's cost of logging a typical line (built and
// written) with GOMAXPROCS goroutines logging to a file: the batch's lock, the copy and the
// writer's share of the write(2) calls are in ns/op.
func BenchmarkWriteParallel(b *testing.B) {
	o, err := OpenOutput(filepath.Join(b.TempDir(), "access.log"), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	l := New(io.Discard)
	l.SetOutput(o)
	defer l.Close()
	at := time.Now()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Write(l.Begin().Time("time", at).Str("request_id", "1d62e51a5790-84g").Str("client_ip", "127.0.0.1").
				Str("method", "GET").Str("host", "127.0.0.1:22101").Str("path", "/").Str("http_version", "HTTP/1.1").
				Int("status", 200).Int("bytes_in", 0).Int("bytes_out", 300).Int("bytes_sent", 435).Str("route", "all").
				Str("upstream", "backend").Str("target", "127.0.0.1:22100").Ms("duration_ms", 7210*time.Microsecond))
		}
	})
}
