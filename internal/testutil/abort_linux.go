package testutil

import (
	"net"
	"syscall"
	"unsafe"
)

// abort resets c (RST) at once. A Close with SO_LINGER 0 sends its RST only after the runtime
// has taken the socket out of its poller: 10 to 100 µs on a loaded machine, longer than some
// windows a test must hit (the gateway writes a request a few µs after its pool checked the
// connection). connect(2) with AF_UNSPEC disconnects the socket in one system call
// (tcp_disconnect, which sends the same RST); the Close that follows sends nothing more.
func abort(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		if rc, err := tc.SyscallConn(); err == nil {
			var sa [16]byte // a struct sockaddr whose sa_family is AF_UNSPEC (0)
			_ = rc.Control(func(fd uintptr) {
				_, _, _ = syscall.RawSyscall(syscall.SYS_CONNECT, fd, uintptr(unsafe.Pointer(&sa[0])), uintptr(len(sa)))
			})
		}
	}
	reset(c)
}
