package compress

import (
	"io"
	"sync"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Encoders are pooled per coding and level, process-wide: the pools outlive config
// generations, so a reload does not throw warm encoders away, and routes with the same
// level share them. An encoder's state (gzip's 32 KiB window and hash tables, brotli's and
// zstd's larger ones) is what a request would otherwise allocate; pooled, a compressed
// response allocates only what the codec itself allocates per stream.

// Window sizes bound each pooled encoder's memory: zstd and brotli default to 8 and 4 MiB
// of history; 1 MiB keeps most of the gain on API bodies (which are far smaller) and is
// within what browsers accept (RFC 9659: zstd windows up to 8 MiB).
const (
	zstdWindow  = 1 << 20
	brotliLGWin = 20
)

// encoder is what gzip.Writer, brotli.Writer and zstd.Encoder have in common.
type encoder interface {
	io.WriteCloser
	Flush() error
	Reset(w io.Writer)
}

// sink is the io.Writer encoders write to: it appends to the buffer the body phase gives.
type sink struct{ b []byte }

func (s *sink) Write(p []byte) (int, error) {
	s.b = append(s.b, p...)
	return len(p), nil
}

// stream is one pooled encoder, bound to its own sink; one response uses it at a time.
type stream struct {
	sink   sink
	enc    encoder
	coding Coding
	pool   *sync.Pool
	etag   []byte // scratch for the weak ETag
}

type poolKey struct {
	coding Coding
	level  int
}

var (
	poolsMu sync.Mutex
	pools   = map[poolKey]*sync.Pool{}
)

// poolFor returns the process-wide pool of encoders of coding c at level.
func poolFor(c Coding, level int) *sync.Pool {
	poolsMu.Lock()
	defer poolsMu.Unlock()
	k := poolKey{c, level}
	if p := pools[k]; p != nil {
		return p
	}
	p := &sync.Pool{}
	p.New = func() any {
		st := &stream{coding: c, pool: p}
		st.enc = newEncoder(c, level, &st.sink)
		return st
	}
	pools[k] = p
	return p
}

// newEncoder makes an encoder of coding c at level (checked by the config) writing to w.
func newEncoder(c Coding, level int, w io.Writer) encoder {
	switch c {
	case Gzip:
		e, err := gzip.NewWriterLevel(w, level)
		if err != nil {
			panic("compress: gzip level " + err.Error()) // the config checked the range
		}
		return e
	case Brotli:
		return brotli.NewWriterOptions(w, brotli.WriterOptions{Quality: level, LGWin: brotliLGWin})
	default:
		e, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.EncoderLevelFromZstd(level)),
			zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zstdWindow), zstd.WithLowerEncoderMem(true))
		if err != nil {
			panic("compress: zstd options: " + err.Error())
		}
		return e
	}
}

// getStream takes an encoder from pool, reset for a new response.
func getStream(pool *sync.Pool) *stream {
	st := pool.Get().(*stream)
	st.enc.Reset(&st.sink)
	return st
}

// put returns st to its pool, holding no body bytes.
func (st *stream) put() {
	st.sink.b = nil
	st.pool.Put(st)
}

// write compresses p into dst and returns it; with end it finishes the stream, otherwise
// it flushes what it has (a sync flush), so that the client can decode every byte the
// upstream sent so far.
func (st *stream) write(dst, p []byte, end bool) []byte {
	st.sink.b = dst
	if len(p) > 0 {
		st.enc.Write(p) // writes to sink cannot fail
	}
	switch {
	case end:
		st.enc.Close()
	case len(p) > 0:
		st.enc.Flush()
	}
	out := st.sink.b
	st.sink.b = nil
	return out
}
