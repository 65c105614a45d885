package proxy

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"testing"
)

// readerFunc is an io.Reader made of a function.
type readerFunc func(p []byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// TestTunnelWaitsWithoutACopyBuffer: a tunnel direction waits for the source's next bytes
// without holding a 32 KiB copy buffer after a short read (a message), so an idle tunnel
// holds none; in a stream (long reads) it reads straight into the buffer. The source's
// Read stands for the wait: it notes whether the copier held a buffer while in it.
func TestTunnelWaitsWithoutACopyBuffer(t *testing.T) {
	chunks := [][]byte{
		[]byte("hello"),                  // a message
		bytes.Repeat([]byte("s"), 8<<10), // a stream starts: the reader's buffer, then the copy buffer
		bytes.Repeat([]byte("t"), 8<<10),
		[]byte("bye"), // a message ends it
		nil,           // EOF
	}
	var bp *[]byte
	var held []bool // per source read: whether the copier held a copy buffer
	var srcReads int
	src := readerFunc(func(p []byte) (int, error) {
		held = append(held, bp != nil)
		if srcReads == len(chunks)-1 {
			return 0, io.EOF
		}
		c := chunks[srcReads]
		n := copy(p, c)
		if n == len(c) {
			srcReads++
		} else {
			chunks[srcReads] = c[n:]
		}
		return n, nil
	})
	d := &direction{src: bufio.NewReaderSize(src, 4<<10)}
	var got []byte
	for {
		n, err := d.read(&bp)
		if n > 0 {
			got = append(got, (*bp)[:n]...)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if want := "hello" + string(bytes.Repeat([]byte("s"), 8<<10)) + string(bytes.Repeat([]byte("t"), 8<<10)) + "bye"; string(got) != want {
		t.Fatalf("copied %d bytes, want %d", len(got), len(want))
	}
	// The first wait, and those after "hello" and "bye", hold no buffer (the reader's Peek
	// reads); the stream's reads go straight into the copy buffer.
	if want := []bool{false, false, true, true, true, false}; fmt.Sprint(held) != fmt.Sprint(want) {
		t.Errorf("copy buffer held at each source read: %v, want %v", held, want)
	}
}
