package netio

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"
)

// splicePair returns src and dst wrapped sockets with their peers: bytes written to srcPeer
// are spliced to dst and read from dstPeer.
func splicePair(t *testing.T) (src, dst *Conn, srcPeer, dstPeer io.ReadWriteCloser) {
	t.Helper()
	src, sp := pair(t)
	dst, dp := pair(t)
	return src, dst, sp, dp
}

// spliceAll is Splice for a test: the pipe must be made.
func spliceAll(t *testing.T, dst, src *Conn, n int64, beforeRead, beforeWrite func()) Spliced {
	t.Helper()
	s, started := Splice(dst, src, n, beforeRead, beforeWrite)
	if !started {
		t.Fatal("Splice did not start")
	}
	return s
}

func TestSpliceMovesExactlyN(t *testing.T) {
	src, dst, sp, dp := splicePair(t)
	data := make([]byte, 5<<20+123)
	for i := range data {
		data[i] = byte(rand.Uint32())
	}
	const extra = "next response"
	go func() { sp.Write(data); sp.Write([]byte(extra)) }()
	got := make(chan []byte, 1)
	go func() { b, _ := io.ReadAll(io.LimitReader(dp, int64(len(data)))); got <- b }()
	var reads, writes int
	r := spliceAll(t, dst, src, int64(len(data)), func() { reads++ }, func() { writes++ })
	if r.Taken != int64(len(data)) || r.Moved != r.Taken || r.Err() != nil {
		t.Fatalf("Splice = %+v; want %d taken and moved, no error", r, len(data))
	}
	if b := <-got; !bytes.Equal(b, data) {
		t.Fatalf("dst peer got %d bytes, not the %d sent (or different ones)", len(b), len(data))
	}
	if reads == 0 || writes == 0 {
		t.Errorf("beforeRead ran %d times, beforeWrite %d: want both before each wait", reads, writes)
	}
	// Nothing past n was taken from src.
	src.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest := make([]byte, len(extra))
	if _, err := io.ReadFull(src, rest); err != nil || string(rest) != extra {
		t.Errorf("after Splice, src reads %q, %v; want %q", rest, err, extra)
	}
}

func TestSpliceSourceEndsEarly(t *testing.T) {
	src, dst, sp, dp := splicePair(t)
	go func() { sp.Write(make([]byte, 100_000)); sp.Close() }()
	go io.Copy(io.Discard, dp)
	r := spliceAll(t, dst, src, 1<<20, nil, nil)
	if r.Moved != 100_000 || r.Taken != r.Moved || !errors.Is(r.ReadErr, io.ErrUnexpectedEOF) || r.WriteErr != nil {
		t.Errorf("Splice = %+v; want 100000 moved, unexpected EOF", r)
	}
}

func TestSpliceReadTimeout(t *testing.T) {
	src, dst, sp, dp := splicePair(t)
	go sp.Write(make([]byte, 1000))
	go io.Copy(io.Discard, dp)
	start := time.Now()
	r := spliceAll(t, dst, src, 1<<20, func() { src.SetReadDeadline(time.Now().Add(100 * time.Millisecond)) }, nil)
	if r.Moved != 1000 || !errors.Is(r.ReadErr, os.ErrDeadlineExceeded) || r.WriteErr != nil {
		t.Errorf("Splice = %+v; want 1000 moved, deadline exceeded", r)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("timed out after %v, want ~100 ms", d)
	}
}

// A client that stops reading: the write side waits under its own deadline and reports it as
// a write error.
func TestSpliceWriteTimeout(t *testing.T) {
	src, dst, sp, _ := splicePair(t)
	go func() { sp.Write(make([]byte, 64<<20)) }()
	r := spliceAll(t, dst, src, 64<<20, nil, func() { dst.SetWriteDeadline(time.Now().Add(200 * time.Millisecond)) })
	if r.ReadErr != nil || !errors.Is(r.WriteErr, os.ErrDeadlineExceeded) || r.Moved >= 64<<20 || r.Taken <= r.Moved {
		t.Errorf("Splice = %+v; want a short count, a write deadline error, and the pipe's undelivered bytes counted as taken", r)
	}
}

func TestSpliceDestinationReset(t *testing.T) {
	src, dst, sp, dp := splicePair(t)
	dp.(interface{ SetLinger(int) error }).SetLinger(0)
	dp.Close() // RST once dst writes
	go func() { sp.Write(make([]byte, 8<<20)) }()
	r := spliceAll(t, dst, src, 8<<20, nil, func() { dst.SetWriteDeadline(time.Now().Add(5 * time.Second)) })
	if r.ReadErr != nil || r.WriteErr == nil || r.Moved >= 8<<20 || r.Taken < r.Moved {
		t.Errorf("Splice = %+v; want a short count and a write error", r)
	}
}
