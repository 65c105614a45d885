package h2pool

import (
	"bytes"
	"testing"

	"golang.org/x/net/http2"
)

// FuzzSniff: the frame-header sniffer under every HTTP/2 client connection parses whatever a
// backend sends without panicking (it runs in the library's read loop, where a panic would
// end the process), and reads the same facts (GOAWAY code and last-stream-id, refused and
// other resets) whatever the sizes of the reads the bytes arrive in.
//
//	go test -run '^$' -fuzz FuzzSniff -fuzztime 1m -fuzzminimizetime 1x ./internal/h2pool
func FuzzSniff(f *testing.F) {
	var b bytes.Buffer
	fr := http2.NewFramer(&b, nil)
	fr.WriteSettings(http2.Setting{ID: http2.SettingMaxConcurrentStreams, Val: 2})
	fr.WriteRSTStream(1, http2.ErrCodeRefusedStream)
	fr.WriteRSTStream(3, http2.ErrCodeCancel)
	fr.WriteData(5, true, []byte("hello"))
	fr.WriteGoAway(7, http2.ErrCodeEnhanceYourCalm, []byte("debug"))
	s := newSniffConn(nil)
	s.feed(b.Bytes())
	if s.refused.Load() != 1 || s.resets.Load() != 1 || !s.goAway.Load() ||
		s.goAwayLast.Load() != 7 || http2.ErrCode(s.goAwayCode.Load()) != http2.ErrCodeEnhanceYourCalm {
		f.Fatalf("sniffed refused %d, resets %d, GOAWAY %v (%d, %d); want the frames written",
			s.refused.Load(), s.resets.Load(), s.goAway.Load(), s.goAwayLast.Load(), s.goAwayCode.Load())
	}
	f.Add(b.Bytes(), []byte{1, 8, 0, 3})
	f.Add([]byte{0, 0, 4, 7, 0, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{0}) // a GOAWAY too short
	f.Add([]byte{0xff, 0xff, 0xff, 3, 0, 0, 0, 0, 1}, []byte{2})    // a huge length
	f.Fuzz(func(t *testing.T, data, cuts []byte) {
		whole := newSniffConn(nil)
		whole.feed(data)
		split := newSniffConn(nil)
		for rest, i := data, 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, int(cuts[i%len(cuts)])+1)
			}
			split.feed(rest[:n])
			rest = rest[n:]
		}
		if whole.goAway.Load() != split.goAway.Load() || whole.goAwayCode.Load() != split.goAwayCode.Load() ||
			whole.goAwayLast.Load() != split.goAwayLast.Load() || whole.refused.Load() != split.refused.Load() ||
			whole.resets.Load() != split.resets.Load() {
			t.Fatalf("facts differ with the reads cut %v", cuts)
		}
	})
}
