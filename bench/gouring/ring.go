//go:build linux && (amd64 || arm64)

package main

// The io_uring layer, written against the kernel's ABI (include/uapi/linux/io_uring.h) with
// raw system calls: no io_uring library is needed for the handful of operations a proxy
// uses. One ring belongs to one loop and is used by one locked OS thread only, so nothing
// here is safe for concurrent use. Memory shared with the kernel (the rings, the buffer
// ring) is mmap'ed; buffers handed to the kernel in SQEs are Go heap slices kept reachable
// by their connection (Go's collector does not move heap objects).

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"syscall"
	"unsafe"
)

const (
	sysIOUringSetup    = 425
	sysIOUringEnter    = 426
	sysIOUringRegister = 427

	// io_uring_setup flags.
	setupCoopTaskrun  = 1 << 8
	setupSingleIssuer = 1 << 12
	setupDeferTaskrun = 1 << 13

	featSingleMmap = 1 << 0

	offSQRing = 0
	offCQRing = 0x8000000
	offSQEs   = 0x10000000

	enterGetEvents = 1 << 0
	enterExtArg    = 1 << 3

	// Opcodes.
	opAccept  = 13
	opConnect = 16
	opSend    = 26
	opRecv    = 27

	// SQE flags.
	sqeFixedFile    = 1 << 0
	sqeBufferSelect = 1 << 5

	// ioprio bits of accept and recv.
	acceptMultishot = 1 << 0
	recvMultishot   = 1 << 1

	// CQE flags.
	cqeFBuffer    = 1 << 0
	cqeFMore      = 1 << 1
	cqeBufferShft = 16

	// io_uring_register opcodes.
	registerFilesUpdate = 6
	registerFiles2      = 13
	registerPbufRing    = 22
	rsrcRegisterSparse  = 1 << 0
)

type sqOffsets struct {
	head, tail, ringMask, ringEntries, flags, dropped, array, resv1 uint32
	userAddr                                                        uint64
}

type cqOffsets struct {
	head, tail, ringMask, ringEntries, overflow, cqes, flags, resv1 uint32
	userAddr                                                        uint64
}

// params is struct io_uring_params.
type params struct {
	sqEntries, cqEntries, flags, sqThreadCPU, sqThreadIdle, features, wqFd uint32
	resv                                                                   [3]uint32
	sqOff                                                                  sqOffsets
	cqOff                                                                  cqOffsets
}

// sqe is struct io_uring_sqe (64 bytes).
type sqe struct {
	opcode, flags uint8
	ioprio        uint16
	fd            int32
	off, addr     uint64
	len, opFlags  uint32
	userData      uint64
	bufGroup      uint16
	personality   uint16
	fileIndex     uint32
	addr3, pad    uint64
}

// cqe is struct io_uring_cqe (16 bytes).
type cqe struct {
	userData uint64
	res      int32
	flags    uint32
}

// ring is one io_uring instance: its submission and completion queues.
type ring struct {
	fd      int
	sqHead  *uint32 // the kernel's: SQEs consumed
	sqTail  *uint32 // ours: published SQEs
	sqMask  uint32
	sqes    []sqe
	tail    uint32  // SQEs filled, published at the next enter
	cqHead  *uint32 // ours
	cqTail  *uint32 // the kernel's
	cqMask  uint32
	cqes    []cqe
	enters  atomic.Uint64 // io_uring_enter calls (read at exit)
	entries uint32
	raw     bool // enter with RawSyscall6
	wait    getEventsArg
	timeout timespec
}

// getEventsArg is struct io_uring_getevents_arg, timespec struct __kernel_timespec.
type getEventsArg struct {
	sigmask     uint64
	sigmaskSize uint32
	minWaitUsec uint32
	ts          uint64
}

type timespec struct{ sec, nsec int64 }

func newRing(entries uint32, flags uint32) (*ring, error) {
	var p params
	p.flags = flags
	fd, _, e := syscall.RawSyscall(sysIOUringSetup, uintptr(entries), uintptr(unsafe.Pointer(&p)), 0)
	if e != 0 {
		return nil, fmt.Errorf("io_uring_setup(flags %#x): %w", flags, e)
	}
	r := &ring{fd: int(fd), entries: p.sqEntries}
	if p.features&featSingleMmap == 0 {
		return nil, fmt.Errorf("io_uring: kernel lacks IORING_FEAT_SINGLE_MMAP")
	}
	size := max(p.sqOff.array+p.sqEntries*4, p.cqOff.cqes+p.cqEntries*uint32(unsafe.Sizeof(cqe{})))
	rm, err := syscall.Mmap(r.fd, offSQRing, int(size), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap rings: %w", err)
	}
	sm, err := syscall.Mmap(r.fd, offSQEs, int(p.sqEntries)*int(unsafe.Sizeof(sqe{})), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("mmap sqes: %w", err)
	}
	u32 := func(off uint32) *uint32 { return (*uint32)(unsafe.Pointer(&rm[off])) }
	r.sqHead, r.sqTail, r.sqMask = u32(p.sqOff.head), u32(p.sqOff.tail), *u32(p.sqOff.ringMask)
	r.cqHead, r.cqTail, r.cqMask = u32(p.cqOff.head), u32(p.cqOff.tail), *u32(p.cqOff.ringMask)
	r.sqes = unsafe.Slice((*sqe)(unsafe.Pointer(&sm[0])), p.sqEntries)
	r.cqes = unsafe.Slice((*cqe)(unsafe.Pointer(&rm[p.cqOff.cqes])), p.cqEntries)
	// The indirection array maps slot i to SQE i once and for all: filling an SQE and
	// moving the tail is then all a submission takes.
	arr := unsafe.Slice((*uint32)(unsafe.Pointer(&rm[p.sqOff.array])), p.sqEntries)
	for i := range arr {
		arr[i] = uint32(i)
	}
	r.tail = atomic.LoadUint32(r.sqTail)
	return r, nil
}

// get returns a zeroed SQE to fill; it is submitted by the next enter. A full queue is
// submitted first.
func (r *ring) get() *sqe {
	if r.tail-atomic.LoadUint32(r.sqHead) == r.entries {
		r.enter(0, 0)
	}
	s := &r.sqes[r.tail&r.sqMask]
	*s = sqe{}
	r.tail++
	return s
}

// enter publishes the filled SQEs, submits them and waits for at least wait completions.
func (r *ring) enter(wait, flags uint32) {
	atomic.StoreUint32(r.sqTail, r.tail)
	n := r.tail - atomic.LoadUint32(r.sqHead)
	if wait > 0 {
		flags |= enterGetEvents
	}
	for {
		r.enters.Add(1)
		// Syscall: the thread may block here, and the runtime hands its P to another thread
		// meanwhile, as it does for epoll_wait. RawSyscall6 (-raw-enter) keeps the P: no
		// hand-off, but nothing else runs on it while the loop waits.
		var e syscall.Errno
		if r.raw {
			// The runtime cannot preempt a goroutine blocked in a raw system call: wait at
			// most 10 ms, then yield, so that the garbage collector and the signal handler's
			// goroutine get the P when the loop is idle.
			r.timeout = timespec{nsec: 10e6}
			r.wait = getEventsArg{ts: uint64(uintptr(unsafe.Pointer(&r.timeout)))}
			_, _, e = syscall.RawSyscall6(sysIOUringEnter, uintptr(r.fd), uintptr(n), uintptr(wait), uintptr(flags|enterExtArg),
				uintptr(unsafe.Pointer(&r.wait)), unsafe.Sizeof(r.wait))
			if e == syscall.ETIME || e == syscall.EINTR {
				runtime.Gosched()
				return
			}
		} else {
			_, _, e = syscall.Syscall6(sysIOUringEnter, uintptr(r.fd), uintptr(n), uintptr(wait), uintptr(flags), 0, 0)
		}
		switch e {
		case 0:
			return
		case syscall.EINTR:
			n = r.tail - atomic.LoadUint32(r.sqHead)
			continue
		case syscall.EBUSY, syscall.EAGAIN:
			return // completions to reap first (CQ overflow): the loop reaps and comes back
		default:
			panic(fmt.Sprintf("io_uring_enter: %v", e))
		}
	}
}

func (r *ring) register(op uint32, arg unsafe.Pointer, n uint32) error {
	_, _, e := syscall.RawSyscall6(sysIOUringRegister, uintptr(r.fd), uintptr(op), uintptr(arg), uintptr(n), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// registerSparseFiles creates a table of n fixed-file slots, all empty.
func (r *ring) registerSparseFiles(n uint32) error {
	reg := struct {
		nr, flags uint32
		resv2     uint64
		data      uint64
		tags      uint64
	}{nr: n, flags: rsrcRegisterSparse}
	return r.register(registerFiles2, unsafe.Pointer(&reg), uint32(unsafe.Sizeof(reg)))
}

// setFile puts fd (-1: none) into fixed-file slot i.
func (r *ring) setFile(i int, fd int) error {
	fds := [1]int32{int32(fd)}
	up := struct {
		offset, resv uint32
		fds          uint64
	}{offset: uint32(i), fds: uint64(uintptr(unsafe.Pointer(&fds[0])))}
	_, _, e := syscall.RawSyscall6(sysIOUringRegister, uintptr(r.fd), registerFilesUpdate, uintptr(unsafe.Pointer(&up)), 1, 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// bufRing is a provided-buffer ring: buffers the kernel picks from for receives that select
// one (multishot recv), handed back with put once their bytes are copied out.
type bufRing struct {
	entries []bufEntry // shared with the kernel; the tail is in entries[0].resv
	mask    uint16
	tail    uint16
	slab    []byte
	size    int
}

type bufEntry struct {
	addr uint64
	len  uint32
	bid  uint16
	resv uint16
}

func (r *ring) registerBufRing(group uint16, n, size int) (*bufRing, error) {
	mem, err := syscall.Mmap(-1, 0, n*int(unsafe.Sizeof(bufEntry{})), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE|syscall.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	slab, err := syscall.Mmap(-1, 0, n*size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE|syscall.MAP_POPULATE)
	if err != nil {
		return nil, err
	}
	b := &bufRing{entries: unsafe.Slice((*bufEntry)(unsafe.Pointer(&mem[0])), n), mask: uint16(n - 1), slab: slab, size: size}
	reg := struct {
		ringAddr    uint64
		ringEntries uint32
		bgid, flags uint16
		resv        [3]uint64
	}{ringAddr: uint64(uintptr(unsafe.Pointer(&mem[0]))), ringEntries: uint32(n), bgid: group}
	if err := r.register(registerPbufRing, unsafe.Pointer(&reg), 1); err != nil {
		return nil, fmt.Errorf("register buffer ring: %w", err)
	}
	for i := range n {
		b.put(uint16(i))
	}
	return b, nil
}

// buf is buffer id's bytes.
func (b *bufRing) buf(id uint16) []byte {
	return b.slab[int(id)*b.size : (int(id)+1)*b.size]
}

// put hands buffer id back to the kernel.
func (b *bufRing) put(id uint16) {
	e := &b.entries[b.tail&b.mask]
	e.addr = uint64(uintptr(unsafe.Pointer(&b.slab[int(id)*b.size])))
	e.len = uint32(b.size)
	e.bid = id
	b.tail++
	// The tail is the u16 at byte 14 of entry 0, which the kernel loads with acquire
	// semantics. Go has no 16-bit atomics: store the aligned word at byte 12 instead, entry
	// 0's own bid (unchanged) in its low half and the tail in its high half (little-endian).
	w := (*uint32)(unsafe.Pointer(&b.entries[0].bid))
	atomic.StoreUint32(w, uint32(b.entries[0].bid)|uint32(b.tail)<<16)
}

func loadAcquire(p *uint32) uint32     { return atomic.LoadUint32(p) }
func storeRelease(p *uint32, v uint32) { atomic.StoreUint32(p, v) }
