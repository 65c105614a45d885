package gateway

import (
	"net"
	"syscall"
	"testing"
)

// TestListenerTCPKeepaliveReload: listeners[].tcp_keepalive is set on the listening socket,
// which accepted sockets inherit (netio.Listen), and a reload that keeps the listener sets
// the new value there, for the connections accepted after it.
func TestListenerTCPKeepaliveReload(t *testing.T) {
	be := hostport(echoBackend(t, "a"))
	yaml := func(keepalive string) string {
		return `
listeners: [{address: 127.0.0.1:0, tcp_keepalive: ` + keepalive + `}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`
	}
	tg := startGateway(t, yaml("20s"), map[string]string{"b": be})
	listening := func() (on, idle int) {
		t.Helper()
		var l *listener
		for _, l = range tg.gw.listeners {
		}
		rc, err := l.ln.(*net.TCPListener).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		rc.Control(func(fd uintptr) {
			on, _ = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
			idle, _ = syscall.GetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE)
		})
		return on, idle
	}
	if on, idle := listening(); on != 1 || idle != 20 {
		t.Fatalf("tcp_keepalive 20s: listening socket has SO_KEEPALIVE %d, TCP_KEEPIDLE %d", on, idle)
	}
	for _, tc := range []struct {
		value    string
		on, idle int
	}{{"45s", 1, 45}, {"0s", 0, -1}} {
		if err := tg.gw.Apply(mustParse(t, yaml(tc.value), map[string]string{"b": be})); err != nil {
			t.Fatal(err)
		}
		on, idle := listening()
		if on != tc.on || (tc.idle >= 0 && idle != tc.idle) {
			t.Errorf("reloaded to tcp_keepalive %s: listening socket has SO_KEEPALIVE %d, TCP_KEEPIDLE %d", tc.value, on, idle)
		}
	}
}
