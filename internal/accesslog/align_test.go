package accesslog

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// offsetWriter records where each write started and ended in the stream, and fails the
// writes listed in fail: writing the first half of the bytes (or none, with none), then an
// error.
type offsetWriter struct {
	mu    sync.Mutex
	b     bytes.Buffer
	ends  []int64 // stream offset after each write
	calls int
	fail  map[int]bool // call numbers (from 1) that fail
	none  bool         // failing writes write nothing
}

func (w *offsetWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	if w.fail[w.calls] {
		n := len(p) / 2
		if w.none {
			n = 0
		}
		w.b.Write(p[:n])
		w.ends = append(w.ends, int64(w.b.Len()))
		return n, errors.New("disk quota exceeded")
	}
	w.b.Write(p)
	w.ends = append(w.ends, int64(w.b.Len()))
	return len(p), nil
}

// alignedLogger is a Logger that cuts batches as it does for a rawFile, writing to
// w from stream offset start, with a timer of an hour (only full batches and Close write).
func alignedLogger(w io.Writer, start int64) *Logger {
	l := newLogger(w, time.Hour)
	l.align, l.fileOff = true, start
	return l
}

// TestAlignedBatchesEndOnPages: with aligned cuts (a rawFile destination), every write but
// Close's last ends on a BatchSize boundary of the file, counting the bytes it held before
// (here 100), and the lines, several batches' worth, arrive whole, each once, in order.
func TestAlignedBatchesEndOnPages(t *testing.T) {
	const start = 100
	w := &offsetWriter{}
	l := alignedLogger(w, start)
	const writers, each = 4, 2000
	var wg sync.WaitGroup
	for wr := range writers {
		wg.Go(func() {
			for i := range each {
				l.Write(l.Begin().Int("w", int64(wr)).Int("i", int64(i)).Str("pad", strings.Repeat("x", 50+i%200)))
			}
		})
	}
	wg.Wait()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if len(w.ends) < 5 {
		t.Fatalf("%d writes, want several batches", len(w.ends))
	}
	for i, end := range w.ends[:len(w.ends)-1] {
		if (start+end)%BatchSize != 0 {
			t.Errorf("write %d of %d ends at file offset %d, not on a %d-byte boundary", i+1, len(w.ends), start+end, BatchSize)
		}
	}
	checkOrder(t, w.b.String(), writers, each)
	if st := l.Stats(); st != (Stats{Written: writers * each}) {
		t.Errorf("stats %+v, want Written %d only", st, writers*each)
	}
}

// TestAlignedFailedWriteLeavesNoFragment: a write that fails (half written, or nothing)
// loses the head of the line the next batch finishes; that batch does not write the line's
// tail as a line of its own. Every line in the file is whole JSON but for one cut line (cut
// by the failed write, or the head the batch before wrote of a line whose tail the failed
// write lost), and the counts add up: whole lines written, the rest dropped.
func TestAlignedFailedWriteLeavesNoFragment(t *testing.T) {
	for _, tc := range []struct {
		name string
		fail map[int]bool
		none bool
		cut  int // lines the file holds cut
	}{
		{name: "half of the second write", fail: map[int]bool{2: true}, cut: 1},
		{name: "nothing of the second write", fail: map[int]bool{2: true}, none: true, cut: 1},
		{name: "two failures in a row", fail: map[int]bool{2: true, 3: true}, cut: 1},
		{name: "the first and the third", fail: map[int]bool{1: true, 3: true}, none: true, cut: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := &offsetWriter{fail: tc.fail, none: tc.none}
			l := alignedLogger(w, 0)
			const n = 4 * BatchSize / 100
			for i := range n {
				l.Write(l.Begin().Int("i", int64(i)).Str("pad", strings.Repeat("y", 60+i%37)))
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			whole, cut, last := 0, 0, int64(-1)
			for line := range strings.Lines(w.b.String()) {
				var v struct{ I int64 }
				if err := json.Unmarshal([]byte(line), &v); err != nil {
					cut++
					continue
				}
				if v.I <= last {
					t.Fatalf("line %d after line %d", v.I, last)
				}
				last = v.I
				whole++
			}
			if cut != tc.cut {
				t.Errorf("%d lines that are not JSON, want %d: a fragment was written", cut, tc.cut)
			}
			st := l.Stats()
			if st.Written != uint64(whole) || st.Written+st.Dropped != n || st.WriteErrors != uint64(len(tc.fail)) {
				t.Errorf("stats %+v: %d whole lines in the file of %d logged", st, whole, n)
			}
		})
	}
}

// TestFileOutputIsAligned: a file destination cuts batches from the file's size
// when it was opened; stdout does not.
func TestFileOutputIsAligned(t *testing.T) {
	o, path := openFile(t)
	o.Close()
	if err := os.WriteFile(path, []byte(fmt.Sprintf("%s\n", strings.Repeat("o", 99))), 0o644); err != nil {
		t.Fatal(err)
	}
	o, err := OpenOutput(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, raw := o.w.(*rawFile); !raw {
		t.Skipf("%s is not on a local filesystem here", path)
	}
	l := newLogger(io.Discard, time.Hour)
	l.SetOutput(o)
	if !l.align || l.fileOff != 100 {
		t.Errorf("file destination: align %v from offset %d, want true from 100", l.align, l.fileOff)
	}
	out, _ := OpenOutput(Stdout, io.Discard, io.Discard)
	l.SetOutput(out)
	if l.align {
		t.Error("stdout: batches are cut")
	}
	l.Close()
}
