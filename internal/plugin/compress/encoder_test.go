package compress

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/andybalholm/brotli"
	"github.com/klauspost/compress/zstd"
)

// decoder returns a reader that decodes coding c from r, with the reference decoders:
// Go's compress/gzip, the brotli and zstd packages' readers.
func decoder(t testing.TB, c Coding, r io.Reader) io.Reader {
	t.Helper()
	switch c {
	case Gzip:
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatalf("gzip header: %v", err)
		}
		return zr
	case Brotli:
		return brotli.NewReader(r)
	default:
		zr, err := zstd.NewReader(r, zstd.WithDecoderConcurrency(1))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(zr.Close)
		return zr
	}
}

// jsonBody is a compressible body of about n bytes.
func jsonBody(n int) []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, `{"id":%d,"name":"item %d","tags":["alpha","beta"],"price":%d.%02d},`+"\n", i, i*7, i%1000, i%100)
	}
	return b.Bytes()[:n]
}

// TestStreamFlushesEachPiece: after each piece (not the end) the output so far decodes to
// exactly the input so far, for every coding: a trickling body is never held back in the
// encoder. The whole stream then decodes to the body, and a reused (pooled) encoder makes
// the same stream again.
func TestStreamFlushesEachPiece(t *testing.T) {
	body := jsonBody(100 << 10)
	pieces := [][]byte{body[:10], body[10:5000], body[5000:5001], body[5001:70000], body[70000:]}
	for _, c := range []Coding{Gzip, Brotli, Zstd} {
		t.Run(c.String(), func(t *testing.T) {
			pool := poolFor(c, map[Coding]int{Gzip: 5, Brotli: 4, Zstd: 3}[c])
			for round := range 2 {
				st := getStream(pool)
				pr, pw := io.Pipe()
				dec := make(chan io.Reader, 1)
				go func() { dec <- decoder(t, c, pr) }()
				var out []byte
				var zr io.Reader
				for i, p := range pieces {
					n := len(out)
					out = st.write(out, p, false)
					go pw.Write(out[n:])
					if zr == nil {
						zr = <-dec
					}
					got := make([]byte, len(p))
					read := make(chan error, 1)
					go func() { _, err := io.ReadFull(zr, got); read <- err }()
					var err error
					select {
					case err = <-read:
					case <-time.After(5 * time.Second):
						pr.CloseWithError(io.ErrUnexpectedEOF) // unblock the reader
						t.Fatalf("round %d piece %d: not decodable after 5 s: held back by the encoder", round, i)
					}
					if err != nil || !bytes.Equal(got, p) {
						t.Fatalf("round %d piece %d: decoded %d bytes (%v), not the piece", round, i, len(got), err)
					}
				}
				n := len(out)
				out = st.write(out, nil, true)
				go func() { pw.Write(out[n:]); pw.Close() }()
				if rest, err := io.ReadAll(zr); err != nil || len(rest) != 0 {
					t.Fatalf("round %d end: %d more bytes, err %v", round, len(rest), err)
				}
				whole, err := io.ReadAll(decoder(t, c, bytes.NewReader(out)))
				if err != nil || !bytes.Equal(whole, body) {
					t.Fatalf("round %d: whole stream decodes to %d bytes (%v), want %d", round, len(whole), err, len(body))
				}
				t.Logf("round %d: %d -> %d bytes", round, len(body), len(out))
				st.put()
			}
		})
	}
}

// BenchmarkStream is the cost of compressing one response with a pooled encoder: a 16 KiB
// JSON body in one read, and 1 MiB in 32 KiB reads (each flushed, as the relay does) and
// in one write (no flushes, what flushing costs). ns/op and allocs/op are per response.
func BenchmarkStream(b *testing.B) {
	small, big := jsonBody(16<<10), jsonBody(1<<20)
	for _, c := range []Coding{Gzip, Brotli, Zstd} {
		level := map[Coding]int{Gzip: 5, Brotli: 4, Zstd: 3}[c]
		pool := poolFor(c, level)
		for _, tc := range []struct {
			name  string
			body  []byte
			piece int
		}{{"16KiB", small, 32 << 10}, {"1MiB-32KiB-reads", big, 32 << 10}, {"1MiB-unflushed", big, 1 << 20}} {
			b.Run(fmt.Sprintf("%s-%d/%s", c, level, tc.name), func(b *testing.B) {
				b.ReportAllocs()
				b.SetBytes(int64(len(tc.body)))
				dst := make([]byte, 0, len(tc.body))
				var out int
				for b.Loop() {
					st := getStream(pool)
					dst = dst[:0]
					for i := 0; i < len(tc.body); i += tc.piece {
						dst = st.write(dst, tc.body[i:min(i+tc.piece, len(tc.body))], false)
					}
					dst = st.write(dst, nil, true)
					out = len(dst)
					st.put()
				}
				b.ReportMetric(float64(out)/float64(len(tc.body))*100, "%size")
			})
		}
	}
}
