package testutil

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"
)

// Spread is a TCP load balancer on 127.0.0.1 that sends each accepted connection to the next
// backend in turn, as a Kubernetes Service spreads a gateway's connections over pods: one
// address for the pool, backends that may differ (say, in their idle timeouts) behind it.
// A backend's FIN reaches the client as a FIN, its reset as a reset.
type Spread struct {
	ln       net.Listener
	backends []string
	next     atomic.Int64
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
}

// NewSpread starts a Spread over backends; it is closed when the test ends.
func NewSpread(t testing.TB, backends ...string) *Spread {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("spread: listen: %v", err)
	}
	s := &Spread{ln: ln, backends: backends, conns: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.Close)
	return s
}

// Addr is the balancer's address.
func (s *Spread) Addr() string { return s.ln.Addr().String() }

// Close stops accepting, closes every relayed connection and waits for the relays.
func (s *Spread) Close() {
	_ = s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		_ = c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

func (s *Spread) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		addr := s.backends[(s.next.Add(1)-1)%int64(len(s.backends))]
		b, err := net.Dial("tcp", addr)
		if err != nil {
			_ = c.Close()
			continue
		}
		s.track(c, b)
		s.wg.Add(2)
		go s.pipe(b, c) // client -> backend
		go s.pipe(c, b) // backend -> client
	}
}

func (s *Spread) track(cs ...net.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range cs {
		s.conns[c] = struct{}{}
	}
}

// pipe copies from src to dst until src ends, then ends dst the same way: a reset with a
// reset (linger 0), anything else with a close.
func (s *Spread) pipe(dst, src net.Conn) {
	defer s.wg.Done()
	_, err := io.Copy(dst, src)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		if tc, ok := dst.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
	}
	_ = dst.Close()
	_ = src.Close()
	s.mu.Lock()
	delete(s.conns, dst)
	delete(s.conns, src)
	s.mu.Unlock()
}
