//go:build linux && (amd64 || arm64)

package main

// The exchange: a client's request head goes to a pooled (peeked) or new upstream
// connection, the whole response comes back into the client's slot and goes out to it; then
// the next request. Each step is a completion handler that queues the next operations.

import (
	"bytes"
	"slices"
	"strconv"
	"syscall"
	"unsafe"
)

// received handles a receive's completion: bytes of a client's request or of an upstream's
// response, end of stream, or an error.
func (l *loop) received(slot int32, k *conn, c cqe) {
	more := c.flags&cqeFMore != 0
	if c.res == -int32(syscall.ENOBUFS) && l.opt.recvRing {
		l.armRecv(slot) // the buffers are back by now: they are returned as soon as copied
		return
	}
	if c.res <= 0 {
		l.closePair(slot)
		return
	}
	n := int(c.res)
	var dst []byte
	switch {
	case k.client:
		dst = k.buf[k.n:]
	case k.peer >= 0:
		cl := l.conns[k.peer]
		dst = cl.rbuf[cl.rn:]
	}
	if l.opt.recvRing {
		id := uint16(c.flags >> cqeBufferShft)
		ok := copy(dst, l.br.buf(id)[:n]) == n
		l.br.put(id)
		if !ok {
			l.closePair(slot) // too big, or bytes from an idle upstream
			return
		}
		if !more {
			l.armRecv(slot)
		}
	}
	if k.client {
		k.n += n
		l.request(slot, k)
	} else {
		l.conns[k.peer].rn += n
		l.response(slot, k)
	}
}

// request forwards the client's next request once its head is complete.
func (l *loop) request(slot int32, k *conn) {
	if k.peer >= 0 || k.replying {
		return // pipelined: handled once the response is out
	}
	i := bytes.Index(k.buf[:k.n], headEnd)
	if i < 0 {
		if k.n == len(k.buf) {
			l.close(slot)
		} else {
			l.recvNext(slot)
		}
		return
	}
	k.reqLen, k.rn = i+4, 0
	u := l.upstream()
	if u < 0 {
		l.close(slot)
		return
	}
	uc := l.conns[u]
	k.peer, uc.peer = u, slot
	switch {
	case uc.checking:
		s := l.sqeFor(u, kPeek)
		s.opcode = opRecv
		s.addr = uint64(uintptr(unsafe.Pointer(&uc.peekBuf[0])))
		s.len = 1
		s.opFlags = syscall.MSG_PEEK | syscall.MSG_DONTWAIT
	case uc.connected:
		l.forward(u, uc)
	}
}

// peeked handles the reuse peek's completion (-ring-peek): nothing to read means the pooled
// connection is usable; anything else closes it and the request tries the next one.
func (l *loop) peeked(u int32, uc *conn, c cqe) {
	uc.checking = false
	if c.res == -int32(syscall.EAGAIN) {
		l.forward(u, uc)
		return
	}
	slot := uc.peer
	l.close(u)
	l.request(slot, l.conns[slot])
}

// upstream returns an idle upstream connection that passes the reuse peek (-ring-peek: that
// is still to check), or a new one (connecting).
func (l *loop) upstream() int32 {
	var one [1]byte
	for len(l.idle) > 0 {
		u := l.idle[len(l.idle)-1]
		l.idle = l.idle[:len(l.idle)-1]
		if l.opt.ringPeek {
			l.conns[u].checking = true
			return u
		}
		r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(l.conns[u].fd), uintptr(unsafe.Pointer(&one[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e == syscall.EAGAIN {
			return u
		}
		_ = r
		l.close(u) // closed by the backend (0), reset, or stray bytes
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	u := l.alloc(fd, false)
	if u < 0 {
		return -1
	}
	s := l.sqeFor(u, kConnect)
	s.opcode = opConnect
	s.addr = uint64(uintptr(unsafe.Pointer(&l.up[0])))
	s.off = uint64(len(l.up))
	return u
}

func (l *loop) connected(u int32, uc *conn, c cqe) {
	if c.res < 0 {
		l.closePair(u)
		return
	}
	uc.connected = true
	if l.opt.recvRing {
		l.armRecv(u)
	}
	if uc.peer >= 0 {
		l.forward(u, uc)
	}
}

// forward sends the client's request on upstream u and waits for the response.
func (l *loop) forward(u int32, uc *conn) {
	cl := l.conns[uc.peer]
	uc.sendDone, uc.respDone, uc.sent = false, false, 0
	l.send(u, cl.buf[:cl.reqLen])
	if !l.opt.recvRing {
		l.recv(u, cl.rbuf)
	}
}

func (l *loop) sent(slot int32, k *conn, c cqe) {
	if c.res < 0 {
		l.closePair(slot)
		return
	}
	k.sent += int(c.res)
	if k.client {
		if k.sent < k.total {
			l.send(slot, k.rbuf[k.sent:k.total])
			return
		}
		// The response is out: on to the next request.
		k.replying = false
		k.n = copy(k.buf, k.buf[k.reqLen:k.n])
		k.reqLen = 0
		l.request(slot, k)
		return
	}
	cl := l.conns[k.peer]
	if k.sent < cl.reqLen {
		l.send(slot, cl.buf[k.sent:cl.reqLen])
		return
	}
	k.sendDone = true
	l.finish(slot, k)
}

// response checks whether the upstream's response is complete.
func (l *loop) response(u int32, uc *conn) {
	cl := l.conns[uc.peer]
	total, keep, err := responseLen(cl.rbuf[:cl.rn])
	if err != nil || (total > 0 && cl.rn > total) {
		l.closePair(u) // unframed, too large, or more than one response
		return
	}
	if total == 0 || cl.rn < total {
		if !l.opt.recvRing {
			l.recv(u, cl.rbuf[cl.rn:])
		}
		return
	}
	cl.total = total
	uc.respDone, uc.reusable = true, keep
	l.finish(u, uc)
}

// finish ends an exchange once the request is sent and the response received: the
// upstream goes back to the pool, the response to the client.
func (l *loop) finish(u int32, uc *conn) {
	if !uc.sendDone || !uc.respDone {
		return
	}
	slot := uc.peer
	cl := l.conns[slot]
	uc.peer, cl.peer = -1, -1
	if uc.reusable {
		l.idle = append(l.idle, u)
	} else {
		l.close(u) // the backend said Connection: close
	}
	cl.replying, cl.sent = true, 0
	l.send(slot, cl.rbuf[:cl.total])
}

func (l *loop) closePair(slot int32) {
	if p := l.conns[slot].peer; p >= 0 {
		l.close(p)
	}
	l.close(slot)
}

// close closes a connection; its socket and slot are released once its operations in flight
// (or queued) have completed: shutdown makes pending receives complete at once, and queued
// sends fail.
func (l *loop) close(slot int32) {
	k := l.conns[slot]
	if k.closing {
		return
	}
	k.closing = true
	if i := slices.Index(l.idle, slot); i >= 0 {
		l.idle = slices.Delete(l.idle, i, i+1)
	}
	if k.peer >= 0 {
		l.conns[k.peer].peer = -1
		k.peer = -1
	}
	if l.opt.fixedFiles {
		_ = l.r.setFile(int(slot), -1)
	}
	if k.pending == 0 {
		l.release(slot)
		return
	}
	_ = syscall.Shutdown(k.fd, syscall.SHUT_RDWR)
}

// responseLen is the length of the response at the start of b (0 while the head is
// incomplete), and whether its connection stays open (no "Connection: close").
func responseLen(b []byte) (int, bool, error) {
	h := bytes.Index(b, headEnd)
	if h < 0 {
		if len(b) == bufSize {
			return 0, false, errBig
		}
		return 0, false, nil
	}
	cl, keep := -1, true
	for line := range bytes.SplitSeq(b[:h], []byte("\r\n")) {
		name, v, ok := bytes.Cut(line, []byte(":"))
		switch {
		case !ok:
		case bytes.EqualFold(name, clName):
			var err error
			if cl, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, false, errBig
			}
		case bytes.EqualFold(name, connName):
			keep = !bytes.Contains(bytes.ToLower(v), []byte("close"))
		}
	}
	if cl < 0 || cl > bufSize || h+4+cl > bufSize {
		return 0, false, errBig
	}
	return h + 4 + cl, keep, nil
}
