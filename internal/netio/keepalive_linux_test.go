package netio

import (
	"net"
	"syscall"
	"testing"
	"time"
)

// TestListenKeepalive: connections accepted from Listen have the keep-alive asked for, set
// on the listening socket and inherited (Go sets none per accept), and TCP_NODELAY; a
// later SetListenerKeepalive (a reload) changes it for the connections accepted after it,
// including turning it off.
func TestListenKeepalive(t *testing.T) {
	ln, err := Listen("127.0.0.1:0", 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type opts struct{ keepalive, idle, intvl, count, nodelay int }
	accepted := func() opts {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		sc, err := ln.Accept()
		if err != nil {
			t.Fatal(err)
		}
		defer sc.Close()
		rc, err := sc.(*net.TCPConn).SyscallConn()
		if err != nil {
			t.Fatal(err)
		}
		var o opts
		rc.Control(func(fd uintptr) {
			get := func(level, opt int) int {
				v, err := syscall.GetsockoptInt(int(fd), level, opt)
				if err != nil {
					t.Fatalf("getsockopt %d: %v", opt, err)
				}
				return v
			}
			o = opts{get(syscall.SOL_SOCKET, syscall.SO_KEEPALIVE), get(syscall.IPPROTO_TCP, syscall.TCP_KEEPIDLE),
				get(syscall.IPPROTO_TCP, syscall.TCP_KEEPINTVL), get(syscall.IPPROTO_TCP, syscall.TCP_KEEPCNT),
				get(syscall.IPPROTO_TCP, syscall.TCP_NODELAY)}
		})
		return o
	}
	if got, want := accepted(), (opts{1, 20, 20, 9, 1}); got != want {
		t.Errorf("tcp_keepalive 20s: accepted connection has %+v, want %+v", got, want)
	}
	if err := SetListenerKeepalive(ln, 2*time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, want := accepted(), (opts{1, 120, 120, 9, 1}); got != want {
		t.Errorf("reloaded to 2m: accepted connection has %+v, want %+v", got, want)
	}
	if err := SetListenerKeepalive(ln, 0); err != nil {
		t.Fatal(err)
	}
	if got := accepted(); got.keepalive != 0 || got.nodelay != 1 {
		t.Errorf("reloaded to 0s (off): accepted connection has %+v, want no SO_KEEPALIVE, TCP_NODELAY", got)
	}
}

// TestKeepaliveSeconds: whole seconds, rounded up, at least one.
func TestKeepaliveSeconds(t *testing.T) {
	for _, tc := range []struct {
		in   time.Duration
		want int
	}{{time.Millisecond, 1}, {time.Second, 1}, {1500 * time.Millisecond, 2}, {15 * time.Second, 15}} {
		if got := keepaliveSeconds(tc.in); got != tc.want {
			t.Errorf("keepaliveSeconds(%v) = %d, want %d", tc.in, got, tc.want)
		}
	}
}
