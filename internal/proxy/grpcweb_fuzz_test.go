package proxy

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"testing"

	"sluice/internal/h1"
	"sluice/internal/reason"
)

// chunkReader returns its data in reads of the sizes cuts gives in turn (1..256 bytes each,
// cycling), as a client's body arrives over the network.
type chunkReader struct {
	data []byte
	cuts []byte
	i    int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	n := len(r.data)
	if len(r.cuts) > 0 {
		n = int(r.cuts[r.i%len(r.cuts)]) + 1
		r.i++
	}
	n = min(n, len(p), len(r.data))
	copy(p, r.data[:n])
	r.data = r.data[n:]
	return n, nil
}

// decodeGroups is the reference for base64Reader: line breaks dropped, each group of 4
// characters decoded on its own; ok is false when a group is not base64 or one is partial.
func decodeGroups(in []byte) (out []byte, ok bool) {
	in = bytes.ReplaceAll(bytes.ReplaceAll(in, []byte("\r"), nil), []byte("\n"), nil)
	for ; len(in) >= 4; in = in[4:] {
		d, err := base64.StdEncoding.DecodeString(string(in[:4]))
		if err != nil {
			return out, false
		}
		out = append(out, d...)
	}
	return out, len(in) == 0
}

// FuzzGRPCWebText: the grpc-web-text request decoder (base64Reader), fed any body in reads
// of any sizes and read in any sizes, never panics, returns exactly what decoding the body
// group by group gives (the decoded prefix before a bad group, then a 400 bad_request that
// names the base64), and the -text response encoder (webBody) turns any bytes, in any
// pieces, and a trailer frame, into one base64 string that decodes back to them.
//
// The seeds run in every go test; to fuzz:
//
//	go test -run '^$' -fuzz FuzzGRPCWebText -fuzztime 2m -fuzzminimizetime 1x ./internal/proxy
func FuzzGRPCWebText(f *testing.F) {
	for _, s := range []struct {
		body string
		cuts []byte
	}{
		{"AAAAAAAF", nil},
		{"AAAAAAUKAwECAw==", []byte{0, 1, 2}},
		{"QQ==QUI=QUJD", []byte{2, 4}},
		{"QUJD\r\nREVG\r\n", []byte{0}},
		{"QQ=", nil},
		{"Q!==", nil},
		{"A===", nil},
		{"====", nil},
		{"QUJD\x00AAA", []byte{3}},
		{"QUJ\nD", []byte{0, 0, 0}},
		{"gAAAAA9ncnBjLXN0YXR1czogMA0K", []byte{5}},
		{string(bytes.Repeat([]byte("QUJD"), 300)) + "QQ", []byte{255, 100}},
		{"-_-_", nil}, // URL-safe alphabet: not grpc-web's
	} {
		f.Add([]byte(s.body), s.cuts, uint8(7))
	}
	f.Fuzz(func(t *testing.T, body, cuts []byte, readSize uint8) {
		want, ok := decodeGroups(body)
		br := &base64Reader{r: io.NopCloser(&chunkReader{data: body, cuts: cuts})}
		var got []byte
		buf := make([]byte, int(readSize)+1)
		var err error
		for range 1 << 20 { // bounded: every Read makes progress or fails
			var n int
			n, err = br.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				break
			}
		}
		switch {
		case ok && err != io.EOF:
			t.Fatalf("valid body %q: %v", body, err)
		case !ok && !errors.Is(err, errBase64Body):
			t.Fatalf("bad body %q: %v; want errBase64Body", body, err)
		case !ok:
			var re *reason.Error
			if !errors.As(err, &re) || re.Status != 400 || re.Code != reason.BadRequest {
				t.Fatalf("bad body %q: %v; want a 400 bad_request", body, err)
			}
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("body %q decoded to %q; want %q", body, got, want)
		}

		// The response direction: body's bytes, cut as cuts says, then a trailer frame.
		w := &webBody{mode: webText}
		var out []byte
		for rest, i := body, 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, int(cuts[i%len(cuts)])+1)
			}
			out = append(out, w.add(rest[:n])...)
			rest = rest[n:]
		}
		if got, want := w.atBoundary(), endsAtBoundary(body); got != want {
			t.Fatalf("response %q: atBoundary %v; want %v", body, got, want)
		}
		var tr h1.Header
		tr.Add("Grpc-Status", "0")
		out = append(out, w.end(&tr)...)
		dec, err := base64.StdEncoding.DecodeString(string(out))
		wantOut := webTrailerFrame(bytes.Clone(body), &tr)
		if err != nil || !bytes.Equal(dec, wantOut) {
			t.Fatalf("response of %d bytes encoded to %q: decodes to %q, %v; want %q", len(body), out, dec, err, wantOut)
		}
	})
}
