package accesslog

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// Destinations other than a file path.
const (
	Stdout = "stdout"
	Stderr = "stderr"
	Off    = "off"
)

// Output is an opened access log destination, ready for [Logger.SetOutput]. Opening is
// separate from switching so that a config reload can open the new destination, fail
// before anything changed, and only then switch.
type Output struct {
	dest string
	w    io.Writer // nil for Off
	file *os.File  // the file Open created, closed with the Output
}

// OpenOutput opens dest: "stdout" (also ""), "stderr", "off", or a file path, created if
// missing and appended to (0644). stdout and stderr are the process's streams.
func OpenOutput(dest string, stdout, stderr io.Writer) (*Output, error) {
	switch dest {
	case "", Stdout:
		return &Output{dest: Stdout, w: stdout}, nil
	case Stderr:
		return &Output{dest: Stderr, w: stderr}, nil
	case Off:
		return &Output{dest: Off}, nil
	}
	f, err := os.OpenFile(dest, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open access log: %w", err)
	}
	return &Output{dest: dest, w: fileWriter(f), file: f}, nil
}

// Dest returns the destination as configured ("stdout", "stderr", "off" or the path).
func (o *Output) Dest() string { return o.dest }

// Close closes the file o opened, if any. Use it for an Output that was never handed to
// SetOutput; a Logger closes the outputs it was given.
func (o *Output) Close() error {
	if o == nil || o.file == nil {
		return nil
	}
	return o.file.Close()
}

// Open returns a Logger writing to dest (see [OpenOutput]).
func Open(dest string, stdout, stderr io.Writer) (*Logger, error) {
	o, err := OpenOutput(dest, stdout, stderr)
	if err != nil {
		return nil, err
	}
	l := New(io.Discard)
	l.SetOutput(o)
	return l, nil
}

// SetOutput writes the lines batched for the current destination to it, then writes to o
// from now on and closes the previous destination's file, if it had one. Lines being
// written meanwhile go to one or the other, whole. o's destination "off" drops lines until
// the next SetOutput.
func (l *Logger) SetOutput(o *Output) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.flushLocked(true, false)
	if l.closer != nil {
		l.closer.Close()
	}
	l.dest, l.closer, l.broken = o.dest, nil, false
	if o.file != nil {
		l.closer = o.file
	}
	l.w = o.w
	if l.w == nil {
		l.w = io.Discard
	}
	l.off.Store(o.dest == Off)
}

// ErrNotAFile is returned by Reopen when the destination is not a file.
var ErrNotAFile = errors.New("the access log is not a file")

// Reopen opens the file destination again by its path and switches to it, so that after a
// log rotation (the file moved away) lines go to a new file of the configured name. A
// destination that is not a file returns ErrNotAFile and changes nothing; a file that cannot
// be opened returns the error and the old file keeps receiving lines.
func (l *Logger) Reopen() error {
	dest := l.Dest()
	switch dest {
	case "", Stdout, Stderr, Off:
		return ErrNotAFile
	}
	o, err := OpenOutput(dest, nil, nil)
	if err != nil {
		return err
	}
	l.SetOutput(o)
	return nil
}

// Dest returns the destination lines go to ("" for a Logger made with New).
func (l *Logger) Dest() string {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	return l.dest
}
