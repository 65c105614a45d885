package netio

import (
	"context"
	"net"
	"time"
)

// TCP keep-alive on client connections (listeners[].tcp_keepalive).
//
// Go's listener sets keep-alive on every accepted connection: SO_KEEPALIVE, TCP_KEEPIDLE,
// TCP_KEEPINTVL and TCP_KEEPCNT, four setsockopt calls per accept (strace of a TLS 1.2
// resumed handshake: 5 setsockopt per connection with TCP_NODELAY, nginx 1). On Linux an
// accepted socket is a copy of its listening socket and inherits those options (and the
// kernel arms the keep-alive timer of the new connection), so [Listen] sets them once on the
// listening socket and turns Go's per-accept calls off. TCP_NODELAY stays per accept (Go
// sets it on every TCP connection).

// keepaliveCount is the number of unanswered probes after which the kernel drops the
// connection, Go's default: a silent peer is found idle + 9 × idle after its last byte.
const keepaliveCount = 9

// Listen opens a TCP listener on addr whose accepted connections have TCP keep-alive with
// idle as both the idle time before the first probe and the interval between probes
// (keepaliveCount probes); idle 0 turns keep-alive off. idle is rounded to whole seconds
// (at least one), as the kernel counts it.
func Listen(addr string, idle time.Duration) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1} // not per accept: the listener's options are inherited
	if !keepaliveInherited {
		lc.KeepAlive = idle
		if idle == 0 {
			lc.KeepAlive = -1
		}
	}
	ln, err := lc.Listen(context.Background(), "tcp", addr)
	if err != nil {
		return nil, err
	}
	if err := SetListenerKeepalive(ln, idle); err != nil {
		ln.Close()
		return nil, err
	}
	return ln, nil
}

// keepaliveSeconds is idle in whole seconds, rounded up, at least 1.
func keepaliveSeconds(idle time.Duration) int {
	return max(1, int((idle+time.Second-1)/time.Second))
}
