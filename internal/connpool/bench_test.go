package connpool

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// BenchmarkGetRelease measures a checkout and release of a pooled conn, the reuse check
// included; BenchmarkCheck prices the check alone.
func BenchmarkGetRelease(b *testing.B) {
	be := testutil.Echo(b)
	p := New(be.Addr(), Options{Enabled: true, Learn: true}, nil)
	defer p.Close(CloseShutdown)
	ctx := context.Background()
	ok := Outcome{Reusable: true, KeepAliveMax: -1}
	b.ReportAllocs()
	for b.Loop() {
		c, err := p.Get(ctx, true)
		if err != nil {
			b.Fatal(err)
		}
		p.Release(c, ok)
	}
	if p.Snapshot().Counters.Opened != 1 {
		b.Fatal("conn not reused")
	}
}

// BenchmarkCheck measures the reuse check a checkout makes on a live idle connection (the
// MSG_PEEK that finds nothing waiting). Subtract it from BenchmarkGetRelease or
// BenchmarkRoundTrip to price a checkout or an exchange without it.
func BenchmarkCheck(b *testing.B) {
	benchCheck(b, testutil.Echo(b).Addr(), nil)
}

// BenchmarkCheckTLS is BenchmarkCheck over TLS: the check reads through the TLS connection
// with a socket that does not wait (one recvfrom that finds nothing, as the peek does).
func BenchmarkCheckTLS(b *testing.B) {
	ca := testutil.NewCA(b)
	be := testutil.NewBackend(b, testutil.BackendOptions{TLS: ca.ServerConfig(b, "127.0.0.1")})
	benchCheck(b, be.Addr(), &tls.Config{RootCAs: ca.Pool()})
}

func benchCheck(b *testing.B, addr string, tc *tls.Config) {
	p := New(addr, Options{Enabled: true, Learn: true, TLS: tc}, nil)
	defer p.Close(CloseShutdown)
	c, err := p.Get(context.Background(), true)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Release(c, Outcome{Reusable: true, KeepAliveMax: -1})
	b.ReportAllocs()
	for b.Loop() {
		if why := c.check(); why != "" {
			b.Fatalf("live connection failed the check: %s", why)
		}
	}
}

// BenchmarkTLSDial prices a new TLS connection (dial and handshake, TLS 1.3, ECDSA P-256
// certificate) with a full handshake and with a session resumed from the pool's cache: the
// cost of the fresh connections that non-idempotent requests get.
func BenchmarkTLSDial(b *testing.B) {
	ca := testutil.NewCA(b)
	be := testutil.NewBackend(b, testutil.BackendOptions{TLS: ca.ServerConfig(b, "127.0.0.1")})
	for _, resume := range []bool{false, true} {
		name := "full"
		if resume {
			name = "resumed"
		}
		b.Run(name, func(b *testing.B) {
			p := New(be.Addr(), Options{Enabled: true, TLS: &tls.Config{RootCAs: ca.Pool(), SessionTicketsDisabled: !resume}}, nil)
			defer p.Close(CloseShutdown)
			if resume { // a first exchange stores the session
				mustExchange(b, p)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				c, err := p.GetFresh(ctx)
				if err != nil {
					b.Fatal(err)
				}
				p.Release(c, Outcome{Err: io.EOF, Reason: CloseRequestError})
			}
			s := p.Snapshot().Counters
			if resume && s.TLSFull != 1 || !resume && s.TLSResumed != 0 {
				b.Fatalf("handshakes: full %d, resumed %d", s.TLSFull, s.TLSResumed)
			}
		})
	}
}

func mustExchange(b *testing.B, p *Pool) {
	if a := exchange(p, "GET", "first"); a.err != nil {
		b.Fatal(a.err)
	}
}

// BenchmarkReleaseEvicts: a Release onto a full idle stack (MaxIdle conns), which retires the
// oldest (pool_full). The conns are pipes with no peer: what is measured is the pool's own
// work (the lock, the verdict, the push and the eviction), not a socket's close.
func BenchmarkReleaseEvicts(b *testing.B) {
	for _, n := range []int{64, 1024} {
		b.Run(fmt.Sprintf("max_idle=%d", n), func(b *testing.B) {
			p := New("127.0.0.1:1", Options{Enabled: true, MaxIdle: n, SweepInterval: time.Hour}, nil)
			defer p.Close(CloseShutdown)
			ok := Outcome{Reusable: true, KeepAliveMax: -1}
			next := pipeConn(b)
			for range n {
				p.Release(pipeConn(b), ok)
			}
			b.ReportAllocs()
			for b.Loop() {
				bottom := p.idle[0] // no sweep runs (SweepInterval): read without the lock
				p.Release(next, ok)
				next = bottom
				next.state = stateInUse
			}
		})
	}
}

// pipeConn is a conn checked out of no pool, over one end of a pipe.
func pipeConn(b testing.TB) *Conn {
	c1, c2 := net.Pipe()
	b.Cleanup(func() { _ = c1.Close(); _ = c2.Close() })
	return newConn(c1, nil, time.Now())
}
