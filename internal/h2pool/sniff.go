package h2pool

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"time"
)

// sniffConn is the connection under one client connection (client.go). It watches the
// frame headers the backend sends (the client's read loop is its only reader) for the facts
// the pool's life records need: that a GOAWAY came, with which code and last-stream-id, how
// many streams were refused, when a byte was last read, when the backend closed the
// connection. (The SETTINGS the client applies itself: the pool reads their stream limit
// from it.) It parses 9-byte frame headers and skips payloads; only a GOAWAY's first 8
// payload bytes and an RST_STREAM's code are looked at.
type sniffConn struct {
	net.Conn

	lastRead atomic.Int64 // unix nanoseconds of the last read that returned bytes
	eofAt    atomic.Int64 // unix nanoseconds the read side failed (backend closed); 0 while open

	goAway     atomic.Bool
	goAwayCode atomic.Uint32
	goAwayLast atomic.Uint32
	refused    atomic.Int64 // RST_STREAM(REFUSED_STREAM) frames
	resets     atomic.Int64 // other RST_STREAM frames

	// Parser state; only the reading goroutine touches it.
	hdr     [9]byte
	hdrN    int
	ftype   byte
	left    uint32  // payload bytes of the current frame still to come
	keep    [8]byte // the kept payload prefix (GOAWAY, RST_STREAM)
	keepN   int
	keepFor int // how many payload bytes to keep for the current frame
}

// Frame types and codes the sniffer looks at (RFC 9113 §6.4, §6.8, §7).
const (
	frameRSTStream    = 0x3
	frameGoAway       = 0x7
	codeRefusedStream = 0x7
)

func newSniffConn(c net.Conn) *sniffConn {
	s := &sniffConn{Conn: c}
	s.lastRead.Store(time.Now().UnixNano())
	return s
}

func (s *sniffConn) Read(p []byte) (int, error) {
	n, err := s.Conn.Read(p)
	if n > 0 {
		s.lastRead.Store(time.Now().UnixNano())
		s.feed(p[:n])
	}
	if err != nil {
		s.eofAt.CompareAndSwap(0, time.Now().UnixNano())
	}
	return n, err
}

// feed parses the frames in b (continuing where the last call stopped).
func (s *sniffConn) feed(b []byte) {
	for len(b) > 0 {
		if s.hdrN < len(s.hdr) {
			k := copy(s.hdr[s.hdrN:], b)
			s.hdrN += k
			b = b[k:]
			if s.hdrN < len(s.hdr) {
				return
			}
			s.left = uint32(s.hdr[0])<<16 | uint32(s.hdr[1])<<8 | uint32(s.hdr[2])
			s.ftype = s.hdr[3]
			s.keepN, s.keepFor = 0, 0
			switch s.ftype {
			case frameGoAway:
				s.keepFor = 8
			case frameRSTStream:
				s.keepFor = 4
			}
			if s.left == 0 {
				s.frameDone()
			}
			continue
		}
		k := min(uint32(len(b)), s.left)
		if s.keepN < s.keepFor {
			s.keepN += copy(s.keep[s.keepN:s.keepFor], b[:k])
		}
		s.left -= k
		b = b[k:]
		if s.left == 0 {
			s.frameDone()
		}
	}
}

// frameDone records a finished frame and readies the parser for the next header.
func (s *sniffConn) frameDone() {
	s.hdrN = 0
	if s.keepN < s.keepFor {
		return // malformed; the client itself fails the connection
	}
	switch s.ftype {
	case frameGoAway:
		s.goAwayLast.Store(binary.BigEndian.Uint32(s.keep[:4]) & 0x7fffffff)
		s.goAwayCode.Store(binary.BigEndian.Uint32(s.keep[4:8]))
		s.goAway.Store(true)
	case frameRSTStream:
		if binary.BigEndian.Uint32(s.keep[:4]) == codeRefusedStream {
			s.refused.Add(1)
		} else {
			s.resets.Add(1)
		}
	}
}
