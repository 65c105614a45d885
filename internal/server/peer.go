package server

import (
	"syscall"

	"sluice/internal/netio"
)

// ClientGone reports whether the client has closed or reset its connection. It peeks at the
// socket without consuming anything, so bytes of a pipelined next request stay where they are.
func (ex *Exchange) ClientGone() bool {
	if ex.c.br.Buffered() > 0 {
		return false
	}
	rc := ex.c.rawConn()
	if rc == nil {
		return false
	}
	var state peekState
	rc.Control(func(fd uintptr) { state = peek(fd) })
	return state == peekClosed
}

// peekState is what a non-consuming look at a socket found.
type peekState int

const (
	peekNothing peekState = iota // nothing to read yet (or interrupted)
	peekData                     // bytes are waiting
	peekClosed                   // the peer closed (FIN) or the socket failed (RST, ...)
)

// peek looks at fd with recv(MSG_PEEK|MSG_DONTWAIT): one non-blocking syscall that consumes
// nothing.
func peek(fd uintptr) peekState {
	n, err := netio.Peek(fd)
	switch {
	case n > 0:
		return peekData
	case err == syscall.EAGAIN || err == syscall.EINTR:
		return peekNothing
	default:
		return peekClosed
	}
}

// Abort marks the response as broken after its head went out: the connection closes without
// completing the body, which is how HTTP/1.1 tells the client the response is incomplete.
func (ex *Exchange) Abort() {
	ex.aborted = true
	ex.closeAfter = true
}
