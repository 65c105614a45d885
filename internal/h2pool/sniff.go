package h2pool

import (
	"encoding/binary"
	"net"
	"sync/atomic"
	"time"
)

// sniffConn is the connection under one http2.ClientConn. It watches the frame headers the
// backend sends (the ClientConn's read loop is its only reader) for the facts the library
// keeps to itself but the pool needs for its records and its learning: that a GOAWAY came,
// with which code and last-stream-id, how many streams were refused, when a byte was last
// read, when the backend closed the connection, and the MAX_CONCURRENT_STREAMS of its latest
// SETTINGS. It parses 9-byte frame headers and skips payloads; only a GOAWAY's first 8
// payload bytes, an RST_STREAM's code and a SETTINGS frame's entries are looked at.
type sniffConn struct {
	net.Conn

	lastRead atomic.Int64 // unix nanoseconds of the last read that returned bytes
	eofAt    atomic.Int64 // unix nanoseconds the read side failed (backend closed); 0 while open

	goAway     atomic.Bool
	goAwayCode atomic.Uint32
	goAwayLast atomic.Uint32
	refused    atomic.Int64 // RST_STREAM(REFUSED_STREAM) frames
	resets     atomic.Int64 // other RST_STREAM frames

	// settings is closed when the backend's first SETTINGS frame has been read (the
	// ClientConn applies it just after), or when the read side fails.
	settings     chan struct{}
	settingsDone bool // reader goroutine only
	// maxStreams is SETTINGS_MAX_CONCURRENT_STREAMS as the backend's latest SETTINGS frame
	// that carried it set it (-1: none did yet). A backend may lower it at any time; the
	// ClientConn applies it just after (it admits streams by it), and the pool's estimate
	// of what a connection takes (burst.go) follows it from here.
	maxStreams atomic.Int64

	// Parser state; only the reading goroutine touches it.
	hdr     [9]byte
	hdrN    int
	ftype   byte
	left    uint32  // payload bytes of the current frame still to come
	keep    [8]byte // the kept payload prefix (GOAWAY, RST_STREAM)
	keepN   int
	keepFor int // how many payload bytes to keep for the current frame
	// A SETTINGS frame's entries (6 bytes each) as they come; entries: the current frame
	// is a SETTINGS frame that is not an ACK.
	entries bool
	entry   [6]byte
	entryN  int
}

// Frame types and codes the sniffer looks at (RFC 9113 §6.4, §6.8, §7).
const (
	frameRSTStream    = 0x3
	frameSettings     = 0x4
	frameGoAway       = 0x7
	codeRefusedStream = 0x7

	settingMaxConcurrentStreams = 0x3
)

func newSniffConn(c net.Conn) *sniffConn {
	s := &sniffConn{Conn: c, settings: make(chan struct{})}
	s.maxStreams.Store(-1)
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
		s.settingsSeen()
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
			s.entries, s.entryN = s.ftype == frameSettings && s.hdr[4]&flagAck == 0, 0
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
		if s.entries {
			s.settingEntries(b[:k])
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
		return // malformed; the ClientConn itself fails the connection
	}
	switch s.ftype {
	case frameSettings:
		s.settingsSeen()
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

// settingEntries reads a SETTINGS frame's entries in b (continuing where the last call
// stopped) and keeps the MAX_CONCURRENT_STREAMS one.
func (s *sniffConn) settingEntries(b []byte) {
	for len(b) > 0 {
		k := copy(s.entry[s.entryN:], b)
		s.entryN += k
		b = b[k:]
		if s.entryN < len(s.entry) {
			return
		}
		s.entryN = 0
		if binary.BigEndian.Uint16(s.entry[:2]) == settingMaxConcurrentStreams {
			s.maxStreams.Store(int64(binary.BigEndian.Uint32(s.entry[2:])))
		}
	}
}

// settingsSeen wakes the requests waiting for the backend's first SETTINGS.
func (s *sniffConn) settingsSeen() {
	if !s.settingsDone {
		s.settingsDone = true
		close(s.settings)
	}
}
