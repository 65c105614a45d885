//go:build linux && (amd64 || arm64)

// Command goepoll is a reference point of the benchmark suite, not a gateway: the least a Go
// proxy can do per request on this machine. It forwards the benchmark's small GETs with no
// routing, no header rewriting, no timeouts, no checks beyond the reuse peek and no
// observability, on one epoll loop per core (SO_REUSEPORT listeners, per-loop upstream
// pools), so that its CPU per request bounds what an event-driven redesign of Sluice's data
// path could gain (issue #8).
//
// -mode loop is a plain event loop: per-connection state, handlers run to the next EAGAIN.
// -mode coro keeps the proxy code sequential: each client connection runs as a coroutine
// (iter.Pull) whose reads yield to its loop on EAGAIN instead of parking on the runtime's
// poller. The difference between the two is what sequential code costs on an event loop.
//
// Limits, by design: requests are heads only (a body is not forwarded), responses need a
// Content-Length and must fit in 64 KiB, no pipelining, and a write that does not complete at
// once closes the connection. Linux on amd64 and arm64 only (epoll, recvfrom/sendto).
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"iter"
	"log"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"unsafe"
)

const bufSize = 64 << 10

var (
	headEnd = []byte("\r\n\r\n")
	clName  = []byte("Content-Length")
	errBig  = errors.New("response larger than the buffer or without Content-Length")
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9210", "listen address")
	upstream := flag.String("upstream", "127.0.0.1:9100", "backend address (IPv4)")
	mode := flag.String("mode", "loop", "loop (event loop) or coro (sequential code as coroutines)")
	loops := flag.Int("loops", runtime.GOMAXPROCS(0), "event loops")
	flag.Parse()
	if *mode != "loop" && *mode != "coro" {
		log.Fatalf("-mode %q: want loop or coro", *mode)
	}
	up, err := sockaddr(*upstream)
	if err != nil {
		log.Fatalf("-upstream: %v", err)
	}
	la, err := sockaddr(*addr)
	if err != nil {
		log.Fatalf("-addr: %v", err)
	}
	for range *loops {
		l, err := newLoop(la, up, *mode == "coro")
		if err != nil {
			log.Fatal(err)
		}
		go l.run()
	}
	fmt.Fprintf(os.Stderr, "goepoll: %s mode, %d loops, %s -> %s\n", *mode, *loops, *addr, *upstream)
	select {}
}

func sockaddr(s string) (*syscall.SockaddrInet4, error) {
	a, err := net.ResolveTCPAddr("tcp4", s)
	if err != nil {
		return nil, err
	}
	sa := &syscall.SockaddrInet4{Port: a.Port}
	copy(sa.Addr[:], a.IP.To4())
	return sa, nil
}

// loop is one epoll instance with its own listener and its own idle upstream connections.
type loop struct {
	ep, lfd int
	up      *syscall.SockaddrInet4
	coro    bool
	idle    []int              // idle upstream sockets, most recent last
	conns   map[int]*conn      // loop mode: every socket's state
	waiting map[int]*coroutine // coro mode: the coroutine waiting for a socket
	events  [256]syscall.EpollEvent
}

func newLoop(la, up *syscall.SockaddrInet4, coro bool) (*loop, error) {
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	_ = syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, soReusePort, 1); err != nil {
		return nil, fmt.Errorf("SO_REUSEPORT: %w", err)
	}
	if err := syscall.Bind(lfd, la); err != nil {
		return nil, fmt.Errorf("bind: %w", err)
	}
	if err := syscall.Listen(lfd, 1024); err != nil {
		return nil, err
	}
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	l := &loop{ep: ep, lfd: lfd, up: up, coro: coro, conns: map[int]*conn{}, waiting: map[int]*coroutine{}}
	return l, l.watch(lfd)
}

// Linux values package syscall lacks (SO_REUSEPORT) or types as a negative int (EPOLLET).
const (
	soReusePort = 0xf
	epollET     = 1 << 31
)

// watch adds fd to the loop's epoll set. Loop mode is level-triggered: a socket with unread
// bytes is reported again, so a handler reads once per report. Coro mode is edge-triggered:
// a coroutine reads until EAGAIN before it waits, so no report can be missed, and a socket
// nobody waits for (a client sending while its request is upstream) is not reported again
// and again.
func (l *loop) watch(fd int) error {
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN | syscall.EPOLLRDHUP, Fd: int32(fd)}
	if l.coro {
		ev.Events |= epollET
	}
	return syscall.EpollCtl(l.ep, syscall.EPOLL_CTL_ADD, fd, &ev)
}

func (l *loop) run() {
	for {
		n, err := syscall.EpollWait(l.ep, l.events[:], -1)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			log.Fatalf("epoll_wait: %v", err)
		}
		for _, ev := range l.events[:n] {
			fd := int(ev.Fd)
			switch {
			case fd == l.lfd:
				l.accept()
			case l.coro:
				if co := l.waiting[fd]; co != nil {
					delete(l.waiting, fd)
					l.resume(co)
				} else if slices.Contains(l.idle, fd) {
					l.drop(fd) // the backend closed an idle connection
				}
			default:
				if c := l.conns[fd]; c != nil {
					l.readable(c)
				}
			}
		}
	}
}

func (l *loop) accept() {
	for {
		fd, _, err := syscall.Accept4(l.lfd, syscall.SOCK_NONBLOCK|syscall.SOCK_CLOEXEC)
		if err == syscall.ECONNABORTED || err == syscall.EINTR {
			continue // the listener is edge-triggered in coro mode: drain the backlog
		}
		if err != nil {
			return
		}
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		if err := l.watch(fd); err != nil {
			syscall.Close(fd)
			continue
		}
		if l.coro {
			l.startCoroutine(fd)
		} else {
			l.conns[fd] = &conn{fd: fd, client: true, buf: make([]byte, bufSize)}
		}
	}
}

// upstream returns an idle upstream socket that passes the reuse peek, or a new one.
func (l *loop) upstream() (int, error) {
	var one [1]byte
	for len(l.idle) > 0 {
		fd := l.idle[len(l.idle)-1]
		l.idle = l.idle[:len(l.idle)-1]
		if _, e := recvfrom(fd, one[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT); e == syscall.EAGAIN {
			return fd, nil
		}
		l.drop(fd)
	}
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	// A blocking connect on loopback: the benchmark dials each pooled connection once.
	if err := syscall.Connect(fd, l.up); err != nil {
		syscall.Close(fd)
		return -1, fmt.Errorf("connect: %w", err)
	}
	_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
	_ = syscall.SetNonblock(fd, true)
	if err := l.watch(fd); err != nil {
		syscall.Close(fd)
		return -1, err
	}
	return fd, nil
}

func (l *loop) drop(fd int) {
	if i := slices.Index(l.idle, fd); i >= 0 {
		l.idle = slices.Delete(l.idle, i, i+1)
	}
	delete(l.conns, fd)
	delete(l.waiting, fd)
	syscall.Close(fd) // closing removes it from the epoll set
}

// conn is a socket's state in loop mode.
type conn struct {
	fd     int
	client bool
	buf    []byte
	n      int
	peer   *conn // a client's upstream in flight, an upstream's client
}

// readable handles one readiness report in loop mode.
func (l *loop) readable(c *conn) {
	if c.n == len(c.buf) {
		l.closePair(c) // a head or response that does not fit
		return
	}
	n, e := recvfrom(c.fd, c.buf[c.n:], 0)
	if e == syscall.EAGAIN {
		return
	}
	if e != 0 || n == 0 {
		l.closePair(c)
		return
	}
	c.n += n
	if c.client {
		l.request(c)
	} else {
		l.response(c)
	}
}

func (l *loop) closePair(c *conn) {
	if c.peer != nil {
		l.drop(c.peer.fd)
	}
	l.drop(c.fd)
}

func (l *loop) request(c *conn) {
	if c.peer != nil {
		return // pipelined: read once the response is out
	}
	i := bytes.Index(c.buf[:c.n], headEnd)
	if i < 0 {
		return
	}
	ufd, err := l.upstream()
	if err != nil {
		l.drop(c.fd)
		return
	}
	u := l.conns[ufd]
	if u == nil {
		u = &conn{fd: ufd, buf: make([]byte, bufSize)}
		l.conns[ufd] = u
	}
	c.peer, u.peer = u, c
	if !sendAll(ufd, c.buf[:i+4]) {
		l.closePair(c)
		return
	}
	c.n = copy(c.buf, c.buf[i+4:c.n])
}

func (l *loop) response(u *conn) {
	total, err := responseLen(u.buf[:u.n])
	if err != nil || u.peer == nil {
		l.closePair(u)
		return
	}
	if total == 0 || u.n < total {
		return
	}
	c := u.peer
	c.peer, u.peer, u.n = nil, nil, 0
	l.idle = append(l.idle, u.fd)
	if !sendAll(c.fd, u.buf[:total]) {
		l.drop(c.fd)
		return
	}
	if c.n > 0 {
		l.request(c)
	}
}

// responseLen is the length of the response at the start of b: 0 while the head is
// incomplete.
func responseLen(b []byte) (int, error) {
	h := bytes.Index(b, headEnd)
	if h < 0 {
		if len(b) == bufSize {
			return 0, errBig
		}
		return 0, nil
	}
	cl := -1
	for line := range bytes.SplitSeq(b[:h], []byte("\r\n")) {
		name, v, ok := bytes.Cut(line, []byte(":"))
		if ok && bytes.EqualFold(name, clName) {
			var err error
			if cl, err = strconv.Atoi(string(bytes.TrimSpace(v))); err != nil {
				return 0, errBig
			}
		}
	}
	if cl < 0 || cl > bufSize || h+4+cl > bufSize {
		return 0, errBig
	}
	return h + 4 + cl, nil
}

// coroutine is one client connection's sequential code in coro mode.
type coroutine struct {
	next func() (int, bool) // resumes it; returns the socket it waits for
}

func (l *loop) startCoroutine(fd int) {
	co := &coroutine{}
	co.next, _ = iter.Pull(func(yield func(int) bool) { l.serve(fd, yield) })
	l.resume(co)
}

// resume runs co until it waits for a socket again or ends.
func (l *loop) resume(co *coroutine) {
	if fd, ok := co.next(); ok {
		l.waiting[fd] = co
	}
}

// serve proxies one client connection, written as blocking code: read (yielding to the loop
// on EAGAIN) a request head, forward it, read the whole response, write it back.
func (l *loop) serve(fd int, yield func(int) bool) {
	defer l.drop(fd)
	buf := make([]byte, bufSize)
	ubuf := make([]byte, bufSize)
	n := 0
	for {
		i := bytes.Index(buf[:n], headEnd)
		for i < 0 {
			if n == len(buf) {
				return
			}
			m, err := read(fd, buf[n:], yield)
			if err != nil {
				return
			}
			n += m
			i = bytes.Index(buf[:n], headEnd)
		}
		ufd, err := l.upstream()
		if err != nil {
			return
		}
		if !sendAll(ufd, buf[:i+4]) {
			l.drop(ufd)
			return
		}
		n = copy(buf, buf[i+4:n])
		un, total := 0, 0
		for total == 0 || un < total {
			m, err := read(ufd, ubuf[un:], yield)
			if err == nil {
				un += m
				total, err = responseLen(ubuf[:un])
			}
			if err != nil {
				l.drop(ufd)
				return
			}
		}
		l.idle = append(l.idle, ufd)
		if !sendAll(fd, ubuf[:total]) {
			return
		}
	}
}

var errClosed = errors.New("connection closed")

// read reads from fd, yielding to the loop until fd is readable.
func read(fd int, p []byte, yield func(int) bool) (int, error) {
	for {
		n, e := recvfrom(fd, p, 0)
		switch {
		case e == syscall.EAGAIN:
			if !yield(fd) {
				return 0, errClosed
			}
		case e != 0:
			return 0, e
		case n == 0:
			return 0, errClosed
		default:
			return n, nil
		}
	}
}

// recvfrom and sendAll call the kernel directly (the sockets are non-blocking).
func recvfrom(fd int, p []byte, flags int) (int, syscall.Errno) {
	r, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), uintptr(flags), 0, 0)
	return int(r), e
}

func sendAll(fd int, p []byte) bool {
	r, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), syscall.MSG_NOSIGNAL, 0, 0)
	return e == 0 && int(r) == len(p)
}
