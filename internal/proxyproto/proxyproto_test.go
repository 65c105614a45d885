package proxyproto

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
)

func TestRead(t *testing.T) {
	src4, dst4 := netip.MustParseAddrPort("203.0.113.7:56324"), netip.MustParseAddrPort("10.0.0.1:443")
	src6, dst6 := netip.MustParseAddrPort("[2001:db8::7]:40000"), netip.MustParseAddrPort("[2001:db8::1]:80")
	v2local := append(append([]byte{}, v2sig...), 0x20, 0x00, 0, 0)
	v2tlv := append(AppendV2(nil, src4, dst4)[:14], 0, 12+5) // 12 address bytes + a 5-byte TLV
	v2tlv = append(v2tlv, AppendV2(nil, src4, dst4)[16:]...)
	v2tlv = append(v2tlv, 0x04, 0, 2, 'h', 'i')
	cases := []struct {
		name    string
		in      string
		want    Header
		wantErr bool
	}{
		{name: "v1 tcp4", in: string(AppendV1(nil, src4, dst4)), want: Header{Version: 1, Source: src4, Destination: dst4}},
		{name: "v1 tcp6", in: string(AppendV1(nil, src6, dst6)), want: Header{Version: 1, Source: src6, Destination: dst6}},
		{name: "v1 unknown", in: "PROXY UNKNOWN\r\n", want: Header{Version: 1, Local: true}},
		{name: "v1 unknown with addresses", in: "PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n", want: Header{Version: 1, Local: true}},
		{name: "v2 tcp4", in: string(AppendV2(nil, src4, dst4)), want: Header{Version: 2, Source: src4, Destination: dst4}},
		{name: "v2 tcp6", in: string(AppendV2(nil, src6, dst6)), want: Header{Version: 2, Source: src6, Destination: dst6}},
		{name: "v2 with TLV", in: string(v2tlv), want: Header{Version: 2, Source: src4, Destination: dst4}},
		{name: "v2 local", in: string(v2local), want: Header{Version: 2, Local: true}},

		{name: "plain HTTP", in: "GET / HTTP/1.1\r\n\r\n", wantErr: true},
		{name: "v1 family mismatch", in: "PROXY TCP4 2001:db8::1 10.0.0.1 1 2\r\n", wantErr: true},
		{name: "v1 bad port", in: "PROXY TCP4 1.2.3.4 10.0.0.1 65536 2\r\n", wantErr: true},
		{name: "v1 leading zero port", in: "PROXY TCP4 1.2.3.4 10.0.0.1 080 2\r\n", wantErr: true},
		{name: "v1 missing field", in: "PROXY TCP4 1.2.3.4 10.0.0.1 80\r\n", wantErr: true},
		{name: "v1 double space", in: "PROXY TCP4  1.2.3.4 10.0.0.1 80 81\r\n", wantErr: true},
		{name: "v1 bare LF", in: "PROXY TCP4 1.2.3.4 10.0.0.1 80 81\n", wantErr: true},
		{name: "v1 too long", in: "PROXY TCP4 " + strings.Repeat("1", 120) + "\r\n", wantErr: true},
		{name: "v1 bad protocol", in: "PROXY UDP4 1.2.3.4 10.0.0.1 80 81\r\n", wantErr: true},
		{name: "v2 bad version", in: string(append(append([]byte{}, v2sig...), 0x11, 0x11, 0, 0)), wantErr: true},
		{name: "v2 short block", in: string(append(append([]byte{}, v2sig...), 0x21, 0x11, 0, 4, 1, 2, 3, 4)), wantErr: true},
		{name: "v2 bad family", in: string(append(append([]byte{}, v2sig...), 0x21, 0x41, 0, 0)), wantErr: true},
		{name: "v2 huge length", in: string(append(append([]byte{}, v2sig...), 0x21, 0x11, 0xff, 0xff)), wantErr: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			after := "GET / HTTP/1.1\r\n"
			r := strings.NewReader(tc.in + after)
			h, err := Read(r)
			if tc.wantErr {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("Read = %+v, %v; want a malformed error", h, err)
				}
				return
			}
			if err != nil || h != tc.want {
				t.Fatalf("Read = %+v, %v; want %+v", h, err, tc.want)
			}
			rest, _ := io.ReadAll(r)
			if string(rest) != after {
				t.Errorf("Read consumed past the header: left %q", rest)
			}
		})
	}
}

// TestReadTruncated: a header cut short is the reader's error (EOF), not a success.
func TestReadTruncated(t *testing.T) {
	full := AppendV2(nil, netip.MustParseAddrPort("1.2.3.4:1"), netip.MustParseAddrPort("5.6.7.8:2"))
	for n := 0; n < len(full); n++ {
		if _, err := Read(bytes.NewReader(full[:n])); err == nil {
			t.Fatalf("Read of %d of %d bytes succeeded", n, len(full))
		}
	}
}

func FuzzRead(f *testing.F) {
	f.Add([]byte("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n"))
	f.Add([]byte("PROXY UNKNOWN\r\n"))
	f.Add(AppendV2(nil, netip.MustParseAddrPort("[::1]:1"), netip.MustParseAddrPort("[::2]:2")))
	f.Fuzz(func(t *testing.T, in []byte) {
		r := bytes.NewReader(in)
		h, err := Read(r)
		if err != nil {
			return
		}
		used := len(in) - r.Len()
		if h.Version == 1 && (used > v1Max || !bytes.HasSuffix(in[:used], []byte("\r\n"))) {
			t.Fatalf("v1 header of %d bytes accepted: %q", used, in[:used])
		}
		if !h.Local && (!h.Source.IsValid() || !h.Destination.IsValid()) {
			t.Fatalf("non-local header without addresses: %+v", h)
		}
	})
}
