package accesslog

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func writeLine(l *Logger, path string) { l.Write(l.Begin().Str("path", path)) }

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestReopenAfterRotation is logrotate's move-then-signal: lines written before the move
// stay in the moved file, lines after Reopen go to a new file of the configured name.
func TestReopenAfterRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "access.log")
	l, err := Open(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	writeLine(l, "/before")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	writeLine(l, "/moved") // still buffered for (and flushed to) the moved file
	if err := l.Reopen(); err != nil {
		t.Fatal(err)
	}
	writeLine(l, "/after")
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	old, cur := readFile(t, path+".1"), readFile(t, path)
	if !strings.Contains(old, "/before") || !strings.Contains(old, "/moved") || strings.Contains(old, "/after") {
		t.Errorf("moved file:\n%s\nwant /before and /moved only", old)
	}
	if strings.Contains(cur, "/before") || !strings.Contains(cur, "/after") {
		t.Errorf("new file:\n%s\nwant /after only", cur)
	}
}

func TestSetOutput(t *testing.T) {
	dir := t.TempDir()
	var stdout, stderr buf
	l, err := Open("stdout", &stdout, &stderr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	switchTo := func(dest string) {
		t.Helper()
		o, err := OpenOutput(dest, &stdout, &stderr)
		if err != nil {
			t.Fatal(err)
		}
		l.SetOutput(o)
	}
	writeLine(l, "/1")
	switchTo("off")
	if l.Begin() != nil {
		t.Error("Begin with the log off: want nil (nothing to build)")
	}
	writeLine(l, "/2")
	switchTo("stderr")
	writeLine(l, "/3")
	file := filepath.Join(dir, "a.log")
	switchTo(file)
	writeLine(l, "/4")
	if err := l.Reopen(); err != nil {
		t.Errorf("Reopen of a file: %v", err)
	}
	switchTo("stdout")
	if err := l.Reopen(); !errors.Is(err, ErrNotAFile) {
		t.Errorf("Reopen of stdout: %v, want ErrNotAFile", err)
	}
	writeLine(l, "/5")
	l.SetOutput(&Output{dest: Off})
	for dest, want := range map[string]string{"stdout": "/1 /5", "stderr": "/3", "file": "/4"} {
		var got string
		switch dest {
		case "stdout":
			got = stdout.String()
		case "stderr":
			got = stderr.String()
		default:
			got = readFile(t, file)
		}
		var paths []string
		for line := range strings.Lines(got) {
			_, p, _ := strings.Cut(line, `"path":"`)
			p, _, _ = strings.Cut(p, `"`)
			paths = append(paths, p)
		}
		if strings.Join(paths, " ") != want {
			t.Errorf("%s got %q, want %q", dest, paths, want)
		}
	}
}

func TestOpenOutputFails(t *testing.T) {
	_, err := OpenOutput(filepath.Join(t.TempDir(), "missing", "access.log"), nil, nil)
	if err == nil || !strings.Contains(err.Error(), "open access log") {
		t.Errorf("err = %v, want an open access log error", err)
	}
}
