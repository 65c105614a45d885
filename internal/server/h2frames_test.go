package server

import (
	"bytes"
	"errors"
	"io"
	"net"
	"testing"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
)

// chunkConn is a net.Conn whose reads return at most n bytes of data, as a socket may.
type chunkConn struct {
	net.Conn
	r *bytes.Reader
	n int
}

func (c *chunkConn) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

// clientBytes is a client's side of a connection: the preface, then what add writes.
func clientBytes(t *testing.T, add func(fr *http2.Framer, block func(...hpack.HeaderField) []byte)) []byte {
	t.Helper()
	var out, hb bytes.Buffer
	out.WriteString(h2Preface)
	fr := http2.NewFramer(&out, nil)
	enc := hpack.NewEncoder(&hb)
	add(fr, func(fs ...hpack.HeaderField) []byte {
		hb.Reset()
		for _, f := range append([]hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
			{Name: ":authority", Value: "x"}, {Name: ":path", Value: "/"}}, fs...) {
			enc.WriteField(f)
		}
		return bytes.Clone(hb.Bytes())
	})
	return out.Bytes()
}

// readWire reads everything the wire passes, in reads of rsize bytes.
func readWire(w *h2Wire, rsize int) ([]byte, error) {
	var got []byte
	buf := make([]byte, rsize)
	for {
		n, err := w.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return got, err
		}
	}
}

// TestH2WireChunking: whatever the sizes of the socket's reads and of the library's, the
// watch passes a legal stream through unchanged (padded and prioritized HEADERS, split
// header blocks, DATA, PING), and cuts a stream with a forbidden field before the frame
// that ends its header block (before its last byte when that frame came in pieces), failing
// the next read with PROTOCOL_ERROR: the library never completes the block.
func TestH2WireChunking(t *testing.T) {
	legal := clientBytes(t, func(fr *http2.Framer, block func(...hpack.HeaderField) []byte) {
		fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1 << 20})
		b := block(hpack.HeaderField{Name: "x-a", Value: "1"})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b, EndHeaders: true, PadLength: 7,
			Priority: http2.PriorityParam{StreamDep: 0, Weight: 9}})
		fr.WriteData(1, true, []byte("body"))
		b = block(hpack.HeaderField{Name: "x-b", Value: "2"})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 3, BlockFragment: b[:3], EndStream: true})
		fr.WriteContinuation(3, true, b[3:])
		fr.WritePing(false, [8]byte{1})
	})
	bad := clientBytes(t, func(fr *http2.Framer, block func(...hpack.HeaderField) []byte) {
		fr.WriteSettings()
		b := block(hpack.HeaderField{Name: "connection", Value: "keep-alive"})
		fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: b[:4], EndStream: true, PadLength: 5,
			Priority: http2.PriorityParam{Weight: 3}})
		fr.WriteContinuation(1, true, b[4:])
	})
	// The CONTINUATION frame is the last one: the cut is where it starts, or, when it came
	// in pieces, before its last byte (the library cannot finish the block without it).
	contLen := 0
	{
		var hb bytes.Buffer
		enc := hpack.NewEncoder(&hb)
		for _, f := range []hpack.HeaderField{{Name: ":method", Value: "GET"}, {Name: ":scheme", Value: "http"},
			{Name: ":authority", Value: "x"}, {Name: ":path", Value: "/"}, {Name: "connection", Value: "keep-alive"}} {
			enc.WriteField(f)
		}
		contLen = hb.Len() - 4
	}
	cut := len(bad) - 9 - contLen
	lim := h2Limits{resets: 100, control: 100, empty: 100, continuations: 16}
	for chunk := 1; chunk <= 23; chunk++ {
		for _, rsize := range []int{1, 9, 64, 4096} {
			w := newH2Wire(&chunkConn{r: bytes.NewReader(legal), n: chunk}, nil, lim, 1<<16)
			got, err := readWire(w, rsize)
			if !errors.Is(err, io.EOF) || !bytes.Equal(got, legal) {
				t.Fatalf("legal stream, socket reads of %d, library reads of %d: %d of %d bytes passed, %v", chunk, rsize, len(got), len(legal), err)
			}
			w = newH2Wire(&chunkConn{r: bytes.NewReader(bad), n: chunk}, nil, lim, 1<<16)
			got, err = readWire(w, rsize)
			var ce http2.ConnectionError
			if !errors.As(err, &ce) || http2.ErrCode(ce) != http2.ErrCodeProtocol || len(got) >= len(bad) ||
				chunk >= 9+contLen && rsize >= 9+contLen && len(got) != cut || !bytes.Equal(got, bad[:len(got)]) {
				t.Fatalf("forbidden field, socket reads of %d, library reads of %d: %d bytes passed (cut at %d), %v", chunk, rsize, len(got), cut, err)
			}
		}
	}
}
