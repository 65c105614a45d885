package accesslog

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// rawOutput is an Output for a temporary file written with the raw write, and the file's
// path; the test is skipped where the temporary directory is not on a local filesystem.
func rawOutput(t *testing.T) (*Output, *rawFile, string) {
	t.Helper()
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

// TestRawWriteKeepsEveryLine: many batches through the raw write (and, once a write was slow,
// through os.File.Write) reach the file whole, in order.
func TestRawWriteKeepsEveryLine(t *testing.T) {
	for _, slow := range []bool{false, true} {
		o, r, path := rawOutput(t)
		if slow {
			old := slowWrite
			slowWrite = 0 // every write is slow: the first switches the file to os.File.Write
			t.Cleanup(func() { slowWrite = old })
		}
		l := newLogger(io.Discard, time.Hour)
		l.SetOutput(o)
		const n = 4 * BatchSize / 60
		var want strings.Builder
		for i := range n {
			l.Write(l.Begin().Int("n", int64(i)).Str("p", "/raw"))
			want.WriteString(`{"n":` + strconv.Itoa(i) + `,"p":"/raw"}` + "\n")
		}
		if r.slow != slow {
			t.Errorf("slow writes %v: the file switched to os.File.Write: %v", slow, r.slow)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, path); got != want.String() {
			t.Errorf("slow writes %v: file has %d bytes, want %d; lines lost, cut or reordered", slow, len(got), want.Len())
		}
		if st := l.Stats(); st.Written != n || st.Dropped != 0 {
			t.Errorf("slow writes %v: stats %+v, want %d written", slow, st, n)
		}
	}
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
