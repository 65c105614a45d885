package server

import (
	"net"
	"syscall"
)

// ClientGone reports whether the client has closed or reset its connection. It peeks at the
// socket without consuming anything (recv with MSG_PEEK|MSG_DONTWAIT), so bytes of a pipelined
// next request stay where they are.
func (ex *Exchange) ClientGone() bool {
	if ex.c.br.Buffered() > 0 {
		return false
	}
	tc, ok := ex.c.nc.(*net.TCPConn)
	if !ok {
		return false
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return false
	}
	gone := false
	rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0, err == syscall.EAGAIN, err == syscall.EINTR:
		case n == 0 && err == nil:
			gone = true
		case err != nil:
			gone = true
		}
	})
	return gone
}

// Abort marks the response as broken after its head went out: the connection closes without
// completing the body, which is how HTTP/1.1 tells the client the response is incomplete.
func (ex *Exchange) Abort() {
	ex.aborted = true
	ex.closeAfter = true
}
