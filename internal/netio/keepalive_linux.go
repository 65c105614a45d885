package netio

import (
	"fmt"
	"net"
	"syscall"
	"time"
)

// keepaliveInherited: Linux copies a listening socket's SO_KEEPALIVE, TCP_KEEPIDLE,
// TCP_KEEPINTVL and TCP_KEEPCNT to the sockets it accepts.
const keepaliveInherited = true

// SetListenerKeepalive sets the TCP keep-alive of the connections ln accepts from now on
// (those already accepted keep theirs): idle as in [Listen], 0 for off. ln must come from
// Listen (Go's own per-accept keep-alive would override the inherited options).
func SetListenerKeepalive(ln net.Listener, idle time.Duration) error {
	tl, ok := ln.(*net.TCPListener)
	if !ok {
		return fmt.Errorf("set TCP keep-alive: %T is not a TCP listener", ln)
	}
	rc, err := tl.SyscallConn()
	if err != nil {
		return fmt.Errorf("set TCP keep-alive: %w", err)
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		on := 0
		if idle > 0 {
			on = 1
		}
		if serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE, on); serr != nil || on == 0 {
			return
		}
		secs := keepaliveSeconds(idle)
		for _, o := range [...]struct{ opt, v int }{
			{syscall.TCP_KEEPIDLE, secs}, {syscall.TCP_KEEPINTVL, secs}, {syscall.TCP_KEEPCNT, keepaliveCount},
		} {
			if serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, o.opt, o.v); serr != nil {
				return
			}
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return fmt.Errorf("set TCP keep-alive on listener %s: %w", ln.Addr(), err)
	}
	return nil
}
