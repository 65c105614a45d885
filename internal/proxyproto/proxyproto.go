// Package proxyproto reads the PROXY protocol header (versions 1 and 2) that a load balancer
// sends at the start of a connection to name the client it accepted
// (https://www.haproxy.org/download/3.0/doc/proxy-protocol.txt).
//
// The reader is strict and reads exactly the header's bytes from the connection, nothing of
// what follows, so the connection can go on to TLS or HTTP unbuffered: version 2 takes two
// reads (its 16-byte preamble, then its stated length), version 1 one read of 8 bytes and
// then one byte at a time up to its CRLF (at most 107 bytes in all). Anything malformed is
// an error and the connection must be closed: a trusted proxy that sends garbage is not to
// be guessed at. github.com/pires/go-proxyproto would do this, but the module proxy does
// not serve it here.
package proxyproto

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// Header is a parsed PROXY header.
type Header struct {
	// Version is 1 or 2.
	Version int
	// Local: the connection was made by the proxy itself (v2 LOCAL, v1 UNKNOWN, or an
	// address family other than TCP over IPv4/IPv6): it names no client.
	Local bool
	// Source and Destination are the client's and the proxy's accepting address; invalid
	// when Local.
	Source, Destination netip.AddrPort
}

// ErrMalformed wraps every malformed-header error.
var ErrMalformed = errors.New("malformed PROXY protocol header")

// v2sig is the 12-byte signature of version 2.
var v2sig = []byte("\r\n\r\n\x00\r\nQUIT\n")

const (
	v1Max = 107  // the longest v1 header, CRLF included
	v2Max = 4096 // the longest v2 address block (with TLVs) accepted
)

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}

// Read reads one PROXY header from r, exactly. An error that is not ErrMalformed is r's
// (a timeout, a closed connection).
func Read(r io.Reader) (Header, error) {
	var buf [v1Max]byte
	if _, err := io.ReadFull(r, buf[:8]); err != nil {
		return Header{}, err
	}
	switch {
	case bytes.Equal(buf[:8], v2sig[:8]):
		return readV2(r, buf[:])
	case bytes.Equal(buf[:6], []byte("PROXY ")):
		n := 8
		for n < 2 || buf[n-2] != '\r' || buf[n-1] != '\n' {
			if n == v1Max {
				return Header{}, malformed("v1 header longer than %d bytes", v1Max)
			}
			if _, err := io.ReadFull(r, buf[n:n+1]); err != nil {
				return Header{}, err
			}
			n++
		}
		return ParseV1(buf[:n])
	}
	return Header{}, malformed("no PROXY protocol signature")
}

// ParseV1 parses a complete version 1 header line, CRLF included.
func ParseV1(line []byte) (Header, error) {
	h := Header{Version: 1}
	rest, ok := bytes.CutPrefix(line, []byte("PROXY "))
	if !ok || len(line) > v1Max {
		return h, malformed("v1: bad prefix or length")
	}
	rest, ok = bytes.CutSuffix(rest, []byte("\r\n"))
	if !ok || bytes.ContainsAny(rest, "\r\n") {
		return h, malformed("v1: no single CRLF at the end")
	}
	if bytes.HasPrefix(rest, []byte("UNKNOWN")) && (len(rest) == 7 || rest[7] == ' ') {
		h.Local = true // the rest of an UNKNOWN line is ignored (spec 2.1)
		return h, nil
	}
	f := bytes.Split(rest, []byte(" "))
	if len(f) != 5 {
		return h, malformed("v1: want 5 space-separated fields, got %d", len(f))
	}
	var want4 bool
	switch string(f[0]) {
	case "TCP4":
		want4 = true
	case "TCP6":
	default:
		return h, malformed("v1: unknown protocol %q", f[0])
	}
	src, err1 := v1Addr(f[1], want4)
	dst, err2 := v1Addr(f[2], want4)
	sp, err3 := v1Port(f[3])
	dp, err4 := v1Port(f[4])
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return h, err
	}
	h.Source, h.Destination = netip.AddrPortFrom(src, sp), netip.AddrPortFrom(dst, dp)
	return h, nil
}

func v1Addr(b []byte, want4 bool) (netip.Addr, error) {
	a, err := netip.ParseAddr(string(b))
	if err != nil || a.Zone() != "" || a.Is4() != want4 {
		return netip.Addr{}, malformed("v1: bad address %q", b)
	}
	return a, nil
}

func v1Port(b []byte) (uint16, error) {
	if len(b) == 0 || len(b) > 5 || (len(b) > 1 && b[0] == '0') {
		return 0, malformed("v1: bad port %q", b)
	}
	n, err := strconv.ParseUint(string(b), 10, 16)
	if err != nil {
		return 0, malformed("v1: bad port %q", b)
	}
	return uint16(n), nil
}

// readV2 reads the rest of a version 2 header whose first 8 bytes are in buf.
func readV2(r io.Reader, buf []byte) (Header, error) {
	if _, err := io.ReadFull(r, buf[8:16]); err != nil {
		return Header{}, err
	}
	if !bytes.Equal(buf[:12], v2sig) {
		return Header{}, malformed("v2: bad signature")
	}
	n := int(binary.BigEndian.Uint16(buf[14:16]))
	if n > v2Max {
		return Header{}, malformed("v2: address block of %d bytes, above %d", n, v2Max)
	}
	block := make([]byte, n)
	if _, err := io.ReadFull(r, block); err != nil {
		return Header{}, err
	}
	return ParseV2(buf[12], buf[13], block)
}

// ParseV2 parses a version 2 header from its version/command byte, its family/protocol byte
// and its address block (with any TLVs, which are skipped).
func ParseV2(verCmd, famProto byte, block []byte) (Header, error) {
	h := Header{Version: 2}
	if verCmd>>4 != 2 {
		return h, malformed("v2: version %d", verCmd>>4)
	}
	switch verCmd & 0xf {
	case 0: // LOCAL: health checks and the like from the proxy itself
		h.Local = true
		return h, nil
	case 1: // PROXY
	default:
		return h, malformed("v2: unknown command %d", verCmd&0xf)
	}
	var alen int
	switch famProto {
	case 0x11: // TCP over IPv4
		alen = 12
	case 0x21: // TCP over IPv6
		alen = 36
	case 0x00, 0x12, 0x22, 0x31, 0x32: // UNSPEC, UDP, unix: no TCP client to name
		h.Local = true
		return h, nil
	default:
		return h, malformed("v2: unknown family/protocol 0x%02x", famProto)
	}
	if len(block) < alen {
		return h, malformed("v2: address block of %d bytes, want %d", len(block), alen)
	}
	ip := alen/2 - 2
	src, _ := netip.AddrFromSlice(block[:ip])
	dst, _ := netip.AddrFromSlice(block[ip : 2*ip])
	sp := binary.BigEndian.Uint16(block[2*ip:])
	dp := binary.BigEndian.Uint16(block[2*ip+2:])
	h.Source, h.Destination = netip.AddrPortFrom(src.Unmap(), sp), netip.AddrPortFrom(dst.Unmap(), dp)
	return h, nil
}

// AppendV1 appends the version 1 header naming src and dst (for tests and clients).
func AppendV1(b []byte, src, dst netip.AddrPort) []byte {
	proto := "TCP6"
	if src.Addr().Is4() {
		proto = "TCP4"
	}
	return fmt.Appendf(b, "PROXY %s %s %s %d %d\r\n", proto, src.Addr(), dst.Addr(), src.Port(), dst.Port())
}

// AppendV2 appends the version 2 PROXY header naming src and dst.
func AppendV2(b []byte, src, dst netip.AddrPort) []byte {
	b = append(b, v2sig...)
	b = append(b, 0x21)
	if src.Addr().Is4() {
		b = append(b, 0x11, 0, 12)
		s, d := src.Addr().As4(), dst.Addr().As4()
		b = append(append(b, s[:]...), d[:]...)
	} else {
		b = append(b, 0x21, 0, 36)
		s, d := src.Addr().As16(), dst.Addr().As16()
		b = append(append(b, s[:]...), d[:]...)
	}
	b = binary.BigEndian.AppendUint16(b, src.Port())
	return binary.BigEndian.AppendUint16(b, dst.Port())
}
