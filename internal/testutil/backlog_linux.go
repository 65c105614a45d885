package testutil

import (
	"errors"
	"net"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// UnansweredAddr returns a loopback address whose connects are not answered for the rest of
// the test: a socket listening with a backlog of 0 that never accepts, its accept queue
// filled by one connection, so that Linux drops every later SYN and a dial hangs until its
// deadline (a target whose accept queue is full). Use it where a test needs a dial cut by
// time, not refused.
func UnansweredAddr(t testing.TB) string {
	t.Helper()
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("testutil: socket: %v", err)
	}
	t.Cleanup(func() { syscall.Close(fd) })
	if err := syscall.Bind(fd, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatalf("testutil: bind: %v", err)
	}
	if err := syscall.Listen(fd, 0); err != nil {
		t.Fatalf("testutil: listen: %v", err)
	}
	sa, err := syscall.Getsockname(fd)
	if err != nil {
		t.Fatalf("testutil: getsockname: %v", err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(sa.(*syscall.SockaddrInet4).Port))
	// Fill the queue: dials succeed (the kernel completes them) until it is full; the first
	// that times out shows a dial there now hangs. A loopback dial to a queue with room
	// completes at once, so a second is a generous bound even on a loaded machine.
	for range 8 {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if ne, ok := errors.AsType[net.Error](err); ok && ne.Timeout() {
			return addr
		}
		if err != nil {
			t.Fatalf("testutil: filling the accept queue of %s: %v", addr, err)
		}
		t.Cleanup(func() { c.Close() })
	}
	t.Fatalf("testutil: the accept queue of %s did not fill (8 connections completed)", addr)
	return ""
}
