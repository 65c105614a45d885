package accesslog

// Writing a batch to a local file without the runtime's system call bookkeeping.
//
// os.File.Write goes through syscall.Syscall, which marks the goroutine's P "in syscall". A
// 64 KiB write into the page cache takes tens of microseconds on a loaded machine, longer
// than sysmon's 20 us tick, so sysmon hands the P to another thread (a futex wake-up, a
// context switch, and another when the write returns) and, having found work, polls every
// 20 us for a while: with the access log on, ten times the nanosleep calls, and 2-3% of
// sluice-full's CPU per request (docs/design.md, "What sluice-full costs, second pass").
// The sockets avoid the same cost with RawSyscall (internal/netio). A file write, unlike a
// non-blocking socket call, can block: a P (and a pending garbage collection's stop) then
// waits for it. So the raw write is used only for a regular file on a local filesystem,
// where a write copies into the page cache, and a write that takes longer than slowWrite
// and slept in the kernel on the way (throttled by writeback, a stalled disk) puts that
// file on os.File.Write for slowRetry before the raw write is tried again. "Slept" is the
// thread's count of voluntary context switches (getrusage RUSAGE_THREAD) moving during the
// write: a write that was only slow because the thread was preempted (a busy machine: on
// the shared 2-vCPU test VM it happened within seconds of load) is not a stalled disk, and
// treating it as one put the file on os.File.Write, and sysmon back on its 20 us polling,
// for a minute after each (docs/design.md, "What sluice-full costs, third pass"). With one P (GOMAXPROCS=1,
// as Go sets it in a container limited to one CPU) a stalled raw write would stop the whole
// gateway, health checks and timers included, so there every write is os.File.Write.

import (
	"io"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

// slowWrite is how long a raw write may take before the file goes back to os.File.Write
// for slowRetry. A 64 KiB page-cache write takes 10-100 us here; a write throttled by
// writeback sleeps for milliseconds to 200 ms. A disk that keeps stalling costs at most one
// stalled raw write per slowRetry.
var (
	slowWrite = 5 * time.Millisecond
	slowRetry = time.Minute
)

// localFS are the filesystem magics (statfs f_type) whose writes go to the page cache.
var localFS = map[int64]bool{
	0xEF53:     true, // ext2/3/4
	0x58465342: true, // xfs
	0x9123683E: true, // btrfs
	0x01021994: true, // tmpfs
	0x794C7630: true, // overlayfs (containers)
	0xF2F52010: true, // f2fs
}

// rawFile writes to f with write(2) as a raw system call, except for slowRetry after a slow
// write that slept. Writes are serialized by the Logger's wmu.
type rawFile struct {
	f         *os.File
	fd        uintptr
	slowUntil time.Time      // after a slow write that slept: os.File.Write until then
	ru        syscall.Rusage // getrusage's answer (here so that it is not allocated)
}

// rusageThread is getrusage's RUSAGE_THREAD: the calling thread's counts.
const rusageThread = 1

// voluntarySwitches is how many times the calling thread has slept in the kernel (given
// up its CPU of its own accord, as opposed to being preempted), and false if getrusage
// failed. A variable so that tests can make every write look as if it slept.
var voluntarySwitches = func(ru *syscall.Rusage) (int64, bool) {
	_, _, e := syscall.RawSyscall(syscall.SYS_GETRUSAGE, rusageThread, uintptr(unsafe.Pointer(ru)), 0)
	return ru.Nvcsw, e == 0
}

// fileWriter returns what a Logger writes f with: a rawFile for a regular file on a local
// filesystem, f itself otherwise.
func fileWriter(f *os.File) io.Writer {
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return f
	}
	var st syscall.Statfs_t
	if err := syscall.Fstatfs(int(f.Fd()), &st); err != nil || !localFS[int64(st.Type)] {
		return f
	}
	return &rawFile{f: f, fd: f.Fd()}
}

func (r *rawFile) Write(b []byte) (int, error) {
	start := time.Now()
	if start.Before(r.slowUntil) || runtime.GOMAXPROCS(0) < 2 {
		return r.f.Write(b)
	}
	// The thread stays the same from one count of its sleeps to the other.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	sleeps, counted := voluntarySwitches(&r.ru)
	n := 0
	for n < len(b) {
		k, _, e := syscall.RawSyscall(syscall.SYS_WRITE, r.fd, uintptr(unsafe.Pointer(&b[n])), uintptr(len(b)-n))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			runtime.KeepAlive(r.f)
			return n, &os.PathError{Op: "write", Path: r.f.Name(), Err: e}
		}
		if k == 0 {
			runtime.KeepAlive(r.f)
			return n, io.ErrShortWrite
		}
		n += int(k)
	}
	runtime.KeepAlive(r.f)
	if end := time.Now(); end.Sub(start) > slowWrite && r.slept(sleeps, counted) {
		r.slowUntil = end.Add(slowRetry)
	}
	return n, nil
}

// slept reports whether the thread slept since voluntarySwitches answered before, counted;
// when either count is unknown it says yes (the safe side: os.File.Write for a while).
func (r *rawFile) slept(before int64, counted bool) bool {
	after, ok := voluntarySwitches(&r.ru)
	return !counted || !ok || after != before
}
