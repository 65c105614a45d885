package h2pool

// A response body's buffer (clientStream.buf): the DATA the read loop received and the
// caller has not read yet. It comes from pools by size class and goes back when the stream
// ends, so that a large body does not allocate its buffer afresh, doubling from empty, on
// every response (~6 MB allocated per 4 MiB body at 1 MiB frames, before).
//
// What a buffer must hold is bounded by flow control: the stream window (4 MiB) is given
// back only as the caller reads, so received and unread data never exceed it, and onData
// moves the unread part to the front before it takes a larger buffer. The largest class
// is therefore the stream window; a larger need (none is possible) is allocated and not
// pooled. A buffer grows by classes as the unread part grows, and goes back as soon as the
// reader drained it: a reader that keeps up holds at most one frame's worth, whatever the
// body's length, and a long-lived stream between messages (gRPC streaming) holds none. So
// the content-length is not used to size it: a 4 MiB body read as it comes needs 1 MiB
// (one frame), not 4.

import "sync"

// bodyClasses are the capacities of pooled body buffers.
var bodyClasses = [...]int{1 << 10, 4 << 10, 16 << 10, 64 << 10, 256 << 10, 1 << 20, streamWindow}

var bodyBufs [len(bodyClasses)]sync.Pool

// getBodyBuf returns an empty buffer with room for n bytes: the smallest class that holds
// them, from its pool.
func getBodyBuf(n int) *[]byte {
	for i, c := range bodyClasses {
		if n <= c {
			if bp, ok := bodyBufs[i].Get().(*[]byte); ok {
				return bp
			}
			b := make([]byte, 0, c)
			return &b
		}
	}
	b := make([]byte, 0, n)
	return &b
}

// putBodyBuf gives bp back to the pool of its class (one not of a class is dropped).
func putBodyBuf(bp *[]byte) {
	for i, c := range bodyClasses {
		if cap(*bp) == c {
			*bp = (*bp)[:0]
			bodyBufs[i].Put(bp)
			return
		}
	}
}

// growBufLocked makes room in the body's buffer for n more bytes (under cc.mu): the unread
// part moves to the front (a reader that never quite catches up would otherwise keep the
// whole body received since it last did), and when that is not enough, into a buffer of
// the next class that holds it; the old one goes back to its pool.
func (cs *clientStream) growBufLocked(n int) {
	if len(cs.buf)+n <= cap(cs.buf) {
		return
	}
	if cs.off > 0 {
		k := copy(cs.buf, cs.buf[cs.off:])
		cs.buf, cs.off = cs.buf[:k], 0
		if len(cs.buf)+n <= cap(cs.buf) {
			return
		}
	}
	bp := getBodyBuf(len(cs.buf) + n)
	*bp = append(*bp, cs.buf...)
	cs.releaseBufLocked()
	cs.bufp, cs.buf = bp, *bp
}

// releaseBufLocked gives the body's buffer back (under cc.mu); the stream holds none after.
func (cs *clientStream) releaseBufLocked() {
	if cs.bufp != nil {
		putBodyBuf(cs.bufp)
	}
	cs.bufp, cs.buf, cs.off = nil, nil, 0
}
