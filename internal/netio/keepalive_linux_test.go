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

// BenchmarkAcceptKeepalive is the server side of a new connection (accept, then close)
// with TCP keep-alive set by Go on each accepted connection (per-accept: 5 setsockopt with
// TCP_NODELAY) and inherited from the listener (Listen: 1). The dialing client runs in the
// same process, so its side is counted too; cpu-us/op is the process's CPU time (user and
// system) per connection, which waits on a loaded machine do not inflate. Compare the two
// side by side.
//
//	go test ./internal/netio -run '^$' -bench AcceptKeepalive -count 6
func BenchmarkAcceptKeepalive(b *testing.B) {
	listen := map[string]func() (net.Listener, error){
		"per-accept": func() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") },
		"inherited":  func() (net.Listener, error) { return Listen("127.0.0.1:0", 15*time.Second) },
	}
	for _, name := range []string{"per-accept", "inherited"} {
		b.Run(name, func(b *testing.B) {
			ln, err := listen[name]()
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			addr := ln.Addr().(*net.TCPAddr)
			start := processCPU(b)
			for b.Loop() {
				fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
				if err != nil {
					b.Fatal(err)
				}
				sa := &syscall.SockaddrInet4{Port: addr.Port}
				copy(sa.Addr[:], addr.IP.To4())
				if err := syscall.Connect(fd, sa); err != nil {
					b.Fatal(err)
				}
				c, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				c.Close()
				syscall.Close(fd)
			}
			b.ReportMetric(float64(processCPU(b)-start)/1e3/float64(b.N), "cpu-us/op")
		})
	}
}

// processCPU is the process's user and system CPU time so far.
func processCPU(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
