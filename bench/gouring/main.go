//go:build linux && (amd64 || arm64)

// Command gouring is a reference point of the benchmark suite, not a gateway: bench/goepoll's
// feature-free proxy on io_uring instead of epoll (issue #21, step 1). It forwards the
// benchmark's small GETs with no routing, no header rewriting, no timeouts and no checks
// beyond the reuse peek, on one ring per core: each loop owns a locked OS thread, an
// SO_REUSEPORT listener, its connections and its idle upstream connections, and blocks in
// io_uring_enter, which submits every operation the previous turn queued (accepts, receives,
// sends, connects, for all of the loop's connections) and waits for at least one completion.
// Counting the system calls per request against epoll's is what it is for.
//
// Each connection lives in a slot of its loop; an operation's user_data carries the slot,
// the slot's generation and the operation, and a slot is reused only once every operation
// it had in flight has completed, so a completion never reaches a later connection in the
// same slot (or one that got the same file descriptor). Before a pooled upstream connection
// is reused, a recv(MSG_PEEK|MSG_DONTWAIT) system call checks that the backend has not
// closed it, as goepoll does.
//
// Options, one per ring feature measured (docs/design.md, bench/uring.sh): -setup
// (COOP_TASKRUN, SINGLE_ISSUER, DEFER_TASKRUN), -multishot-accept, -recv-ring (multishot
// receives into a provided buffer ring, armed once per connection), -fixed-files (registered
// file table), -ring-peek (the reuse peek as an SQE), -raw-enter (io_uring_enter as a raw
// system call, without the runtime's hand-off of the thread's P).
//
// Limits, by design: requests are heads only (a body is not forwarded), responses need a
// Content-Length and must fit in 64 KiB, no pipelining. Linux on amd64 and arm64 only.
package main

import (
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"unsafe"
)

const bufSize = 64 << 10

var (
	headEnd  = []byte("\r\n\r\n")
	clName   = []byte("Content-Length")
	connName = []byte("Connection")
	errBig   = errors.New("response larger than the buffer or without Content-Length")
)

// options are the ring features a run uses.
type options struct {
	entries     uint32 // SQ entries per ring
	setup       uint32 // io_uring_setup flags
	multiAccept bool
	recvRing    bool
	fixedFiles  bool
	ringPeek    bool // the reuse peek as a recv SQE, not a system call
	rawEnter    bool // io_uring_enter without telling the runtime (RawSyscall6)
}

func main() {
	addr := flag.String("addr", "127.0.0.1:9220", "listen address")
	upstream := flag.String("upstream", "127.0.0.1:9100", "backend address (IPv4)")
	loops := flag.Int("loops", runtime.GOMAXPROCS(0), "rings (one loop and OS thread each)")
	setup := flag.String("setup", "", "io_uring_setup flags, comma-separated: coop, single, defer (defer needs single)")
	var o options
	flag.BoolVar(&o.multiAccept, "multishot-accept", false, "one multishot accept per ring instead of one accept per connection")
	flag.BoolVar(&o.recvRing, "recv-ring", false, "multishot receives into a provided buffer ring, armed once per connection")
	flag.BoolVar(&o.fixedFiles, "fixed-files", false, "register each socket in the ring's file table")
	flag.BoolVar(&o.ringPeek, "ring-peek", false, "the reuse peek as a recv(MSG_PEEK|MSG_DONTWAIT) SQE (one more ring turn) instead of a system call")
	flag.BoolVar(&o.rawEnter, "raw-enter", false, "block in io_uring_enter without entering the runtime's syscall state (the loop keeps its P)")
	entries := flag.Uint("entries", 1024, "submission queue entries per ring")
	flag.Parse()
	o.entries = uint32(*entries)
	var err error
	if o.setup, err = setupFlags(*setup); err != nil {
		log.Fatalf("-setup: %v", err)
	}
	up, err := sockaddr(*upstream)
	if err != nil {
		log.Fatalf("-upstream: %v", err)
	}
	la, err := sockaddr(*addr)
	if err != nil {
		log.Fatalf("-addr: %v", err)
	}
	ls, _, err := start(la, up, *loops, o)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Fprintf(os.Stderr, "gouring: %d rings, %+v, %s -> %s\n", *loops, o, *addr, *upstream)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	<-sig
	// How many completions each io_uring_enter brought back: the batching a ring gives.
	var enters, cqes uint64
	for _, l := range ls {
		enters += l.r.enters.Load()
		cqes += l.cqes.Load()
	}
	fmt.Fprintf(os.Stderr, "gouring: %d io_uring_enter calls, %d completions\n", enters, cqes)
}

func setupFlags(s string) (uint32, error) {
	var f uint32
	for name := range strings.SplitSeq(s, ",") {
		switch name {
		case "":
		case "coop":
			f |= setupCoopTaskrun
		case "single":
			f |= setupSingleIssuer
		case "defer":
			f |= setupDeferTaskrun
		default:
			return 0, fmt.Errorf("unknown flag %q (want coop, single, defer)", name)
		}
	}
	return f, nil
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

// start runs n loops listening on la (port 0: a free port, shared by all loops) and returns
// them and the port they listen on.
func start(la, up *syscall.SockaddrInet4, n int, o options) ([]*loop, int, error) {
	port := la.Port
	var ls []*loop
	for range n {
		a := *la
		a.Port = port
		errc := make(chan error, 1)
		l := &loop{opt: o}
		go l.run(&a, up, errc)
		if err := <-errc; err != nil {
			return nil, 0, err
		}
		ls = append(ls, l)
		if port == 0 {
			sa, err := syscall.Getsockname(l.lfd)
			if err != nil {
				return nil, 0, err
			}
			port = sa.(*syscall.SockaddrInet4).Port
		}
	}
	return ls, port, nil
}

// Operations, in the top byte of user_data.
const (
	kAccept = iota + 1
	kRecv
	kSend
	kConnect
	kPeek
)

func userData(op uint8, slot int32, gen uint32) uint64 {
	return uint64(op)<<56 | uint64(gen&0xffffff)<<32 | uint64(uint32(slot))
}

// loop is one ring with its own listener, connections and idle upstream connections.
type loop struct {
	opt         options
	r           *ring
	lfd         int
	up          [16]byte // the backend's struct sockaddr_in, for connect SQEs
	conns       []*conn  // by slot
	free        []int32  // slots with nothing in flight, reusable
	idle        []int32  // idle upstream connections, most recent last
	br          *bufRing // -recv-ring: the provided buffers
	acceptArmed bool
	cqes        atomic.Uint64 // completions handled (read at exit)
}

// conn is a connection's slot. A client's slot holds its request and the response being
// relayed (the upstream receives straight into its client's rbuf).
type conn struct {
	fd       int
	gen      uint32
	client   bool
	closing  bool
	pending  int   // operations in flight (an armed multishot counts once)
	peer     int32 // the upstream a client waits for, the client an upstream serves; -1
	buf      []byte
	n        int // request bytes in buf
	reqLen   int // the request being forwarded: buf[:reqLen]
	rbuf     []byte
	rn       int // response bytes in rbuf
	total    int // the response's length
	sent     int // bytes of the current send done
	replying bool
	// upstream
	connected, sendDone, respDone, reusable bool
	checking                                bool    // -ring-peek: the reuse peek is in flight
	peekBuf                                 [1]byte // -ring-peek: its buffer
}

const maxSlots = 16384

// setup creates the ring and the listener on the calling (locked) thread: with
// SINGLE_ISSUER the thread that creates a ring is the only one that may submit to it.
func (l *loop) setup(la, up *syscall.SockaddrInet4) error {
	r, err := newRing(l.opt.entries, l.opt.setup)
	if err != nil {
		return err
	}
	r.raw = l.opt.rawEnter
	l.r = r
	lfd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	l.lfd = lfd
	_ = syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
	if err := syscall.SetsockoptInt(lfd, syscall.SOL_SOCKET, soReusePort, 1); err != nil {
		return fmt.Errorf("SO_REUSEPORT: %w", err)
	}
	if err := syscall.Bind(lfd, la); err != nil {
		return fmt.Errorf("bind: %w", err)
	}
	if err := syscall.Listen(lfd, 1024); err != nil {
		return err
	}
	l.up[0] = syscall.AF_INET // sa_family, little-endian u16
	l.up[2], l.up[3] = byte(up.Port>>8), byte(up.Port)
	copy(l.up[4:8], up.Addr[:])
	if l.opt.fixedFiles {
		if err := r.registerSparseFiles(maxSlots); err != nil {
			return fmt.Errorf("register files: %w", err)
		}
	}
	if l.opt.recvRing {
		if l.br, err = r.registerBufRing(0, 512, 4096); err != nil {
			return err
		}
	}
	return nil
}

const soReusePort = 0xf

func (l *loop) run(la, up *syscall.SockaddrInet4, errc chan<- error) {
	runtime.LockOSThread()
	err := l.setup(la, up)
	errc <- err
	if err != nil {
		return
	}
	l.armAccept()
	r := l.r
	for {
		r.enter(1, 0)
		head := *r.cqHead
		tail := loadAcquire(r.cqTail)
		l.cqes.Add(uint64(tail - head))
		for ; head != tail; head++ {
			c := r.cqes[head&r.cqMask]
			storeRelease(r.cqHead, head+1)
			l.complete(c)
		}
	}
}

func (l *loop) armAccept() {
	s := l.r.get()
	s.opcode = opAccept
	s.fd = int32(l.lfd)
	s.opFlags = syscall.SOCK_CLOEXEC
	if l.opt.multiAccept {
		s.ioprio = acceptMultishot
	}
	s.userData = userData(kAccept, 0, 0)
	l.acceptArmed = true
}

func (l *loop) complete(c cqe) {
	op := uint8(c.userData >> 56)
	if op == kAccept {
		l.accepted(c)
		return
	}
	slot, gen := int32(uint32(c.userData)), uint32(c.userData>>32)&0xffffff
	k := l.conns[slot]
	if c.flags&cqeFBuffer != 0 && op != kRecv {
		panic("buffer on a non-receive completion")
	}
	if c.flags&cqeFMore == 0 {
		k.pending--
	}
	if k.gen != gen {
		// Cannot happen while slots wait for their operations (pending), which is what
		// this guards: a completion must not touch a later connection in the slot.
		panic(fmt.Sprintf("completion for generation %d in slot %d of generation %d", gen, slot, k.gen))
	}
	if k.closing {
		if c.flags&cqeFBuffer != 0 {
			l.br.put(uint16(c.flags >> cqeBufferShft))
		}
		if k.pending == 0 {
			l.release(slot)
		}
		return
	}
	switch op {
	case kRecv:
		l.received(slot, k, c)
	case kSend:
		l.sent(slot, k, c)
	case kConnect:
		l.connected(slot, k, c)
	case kPeek:
		l.peeked(slot, k, c)
	}
}

func (l *loop) accepted(c cqe) {
	if c.flags&cqeFMore == 0 {
		l.acceptArmed = false
	}
	if c.res >= 0 {
		fd := int(c.res)
		_ = syscall.SetsockoptInt(fd, syscall.IPPROTO_TCP, syscall.TCP_NODELAY, 1)
		if slot := l.alloc(fd, true); slot >= 0 {
			l.recvNext(slot)
		}
	}
	if !l.acceptArmed {
		l.armAccept()
	}
}

// alloc gives fd a slot (and a new generation), or closes it and returns -1.
func (l *loop) alloc(fd int, client bool) int32 {
	var slot int32
	if n := len(l.free); n > 0 {
		slot = l.free[n-1]
		l.free = l.free[:n-1]
	} else {
		if len(l.conns) == maxSlots {
			syscall.Close(fd)
			return -1
		}
		slot = int32(len(l.conns))
		l.conns = append(l.conns, &conn{})
	}
	k := l.conns[slot]
	buf, rbuf := k.buf, k.rbuf
	*k = conn{fd: fd, gen: (k.gen + 1) & 0xffffff, client: client, peer: -1, buf: buf, rbuf: rbuf}
	if client && k.buf == nil {
		k.buf, k.rbuf = make([]byte, bufSize), make([]byte, bufSize)
	}
	if l.opt.fixedFiles {
		if err := l.r.setFile(int(slot), fd); err != nil {
			log.Printf("register file: %v", err)
			syscall.Close(fd)
			l.free = append(l.free, slot)
			return -1
		}
	}
	if l.opt.recvRing && client {
		l.armRecv(slot)
	}
	return slot
}

// release closes the socket of a closed slot with nothing in flight and makes the slot
// reusable. The descriptor is closed only now: an SQE still queued for it (filled this turn,
// submitted at the next enter) would otherwise reach whichever new socket got its number.
func (l *loop) release(slot int32) {
	syscall.Close(l.conns[slot].fd)
	l.free = append(l.free, slot)
}

// sqeFor returns an SQE for op on slot's socket.
func (l *loop) sqeFor(slot int32, op uint8) *sqe {
	k := l.conns[slot]
	s := l.r.get()
	if l.opt.fixedFiles {
		s.fd, s.flags = slot, sqeFixedFile
	} else {
		s.fd = int32(k.fd)
	}
	s.userData = userData(op, slot, k.gen)
	k.pending++
	return s
}

func (l *loop) recv(slot int32, p []byte) {
	s := l.sqeFor(slot, kRecv)
	s.opcode = opRecv
	s.addr = uint64(uintptr(unsafe.Pointer(&p[0])))
	s.len = uint32(len(p))
}

// armRecv starts a multishot receive into the buffer ring (-recv-ring): it stays armed until
// a completion without IORING_CQE_F_MORE.
func (l *loop) armRecv(slot int32) {
	s := l.sqeFor(slot, kRecv)
	s.opcode = opRecv
	s.flags |= sqeBufferSelect
	s.ioprio = recvMultishot
	s.bufGroup = 0
}

func (l *loop) send(slot int32, p []byte) {
	s := l.sqeFor(slot, kSend)
	s.opcode = opSend
	s.addr = uint64(uintptr(unsafe.Pointer(&p[0])))
	s.len = uint32(len(p))
	s.opFlags = syscall.MSG_NOSIGNAL
}

// recvNext waits for more of a client's request (unless the buffer ring's receive is armed).
func (l *loop) recvNext(slot int32) {
	if !l.opt.recvRing {
		k := l.conns[slot]
		l.recv(slot, k.buf[k.n:])
	}
}
