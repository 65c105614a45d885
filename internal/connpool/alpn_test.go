package connpool

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// alpnRecorder is the pool's ALPN: it records the answers and keeps the connections it is
// handed (closing them at the end), as the target's HTTP/2 pool would adopt them.
type alpnRecorder struct {
	mu      sync.Mutex
	learned []string
	adopted []net.Conn
}

func (r *alpnRecorder) Learn(proto string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.learned = append(r.learned, proto)
}

func (r *alpnRecorder) Adopt(c net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.adopted = append(r.adopted, c)
	return true
}

func autoPool(t *testing.T, ca *testutil.CA, addr string, rec *alpnRecorder) *Pool {
	p := tlsPool(t, ca, addr, func(o *Options) { o.ALPN, o.MaxConns = rec, 1 })
	t.Cleanup(func() {
		for _, c := range rec.adopted {
			c.Close()
		}
	})
	return p
}

// TestALPNHandOverH2: a dial on which the target chose h2 hands the connection (a TLS
// connection that agreed to h2) to the ALPN, frees its slot (MaxConns 1: the next Get is not
// stuck) and ends the Get with ErrNegotiatedH2, its handshake counted; the health checks' TLS
// config still offers only http/1.1.
func TestALPNHandOverH2(t *testing.T) {
	ca := testutil.NewCA(t)
	srv := ca.ServerConfig(t, "127.0.0.1")
	srv.NextProtos = []string{"h2", "http/1.1"}
	b := testutil.NewBackend(t, testutil.BackendOptions{TLS: srv})
	rec := &alpnRecorder{}
	p := autoPool(t, ca, b.Addr(), rec)
	for i := range 2 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := p.Get(ctx, false)
		cancel()
		if !errors.Is(err, ErrNegotiatedH2) {
			t.Fatalf("Get %d: %v; want ErrNegotiatedH2", i, err)
		}
	}
	if len(rec.adopted) != 2 || len(rec.learned) != 2 || rec.learned[0] != "h2" {
		t.Fatalf("learned %v, %d adopted; want h2 twice", rec.learned, len(rec.adopted))
	}
	if proto := rec.adopted[0].(*tls.Conn).ConnectionState().NegotiatedProtocol; proto != "h2" {
		t.Errorf("adopted connection's ALPN %q; want h2", proto)
	}
	s := p.Snapshot()
	if s.Counters.HandedToH2 != 2 || s.Counters.Opened != 0 || len(s.Conns) != 0 {
		t.Errorf("counters %+v, %d conns; want 2 handed over and nothing kept", s.Counters, len(s.Conns))
	}
	// The handshakes of connections handed over are the target's too: counted here (full
	// ones: nothing read the session tickets).
	if n := s.Counters.TLSFull + s.Counters.TLSResumed; n != 2 {
		t.Errorf("handshakes full %d resumed %d; want 2 in all", s.Counters.TLSFull, s.Counters.TLSResumed)
	}
	if np := p.TLSConfig().NextProtos; slices.Contains(np, "h2") {
		t.Errorf("TLSConfig().NextProtos = %v; want no h2 (an HTTP/1.1 health probe uses it)", np)
	}
}

// TestALPNDialH2KeepsHTTP1: DialH2 against a target that chose HTTP/1.1 keeps the connection
// as an unused idle one, and the next request, a POST, takes it: one connection in all.
// Against a target that chose h2 it returns the connection and keeps nothing.
func TestALPNDialH2KeepsHTTP1(t *testing.T) {
	ca := testutil.NewCA(t)
	b := testutil.NewBackend(t, testutil.BackendOptions{TLS: ca.ServerConfig(t, "127.0.0.1")}) // no ALPN: HTTP/1.1
	rec := &alpnRecorder{}
	p := autoPool(t, ca, b.Addr(), rec)
	c, proto, err := p.DialH2(context.Background())
	if c != nil || proto != "http/1.1" || err != nil {
		t.Fatalf("DialH2 = %v, %q, %v; want nil, http/1.1, nil", c, proto, err)
	}
	mustOK(t, exchange(p, http.MethodPost, "1"))
	if s := p.Snapshot(); b.Accepted() != 1 || s.Counters.FromH2 != 1 || s.Counters.Opened != 1 || s.Counters.PreconnectsUsed != 1 {
		t.Errorf("accepted %d, counters %+v; want the one connection DialH2 made used by the POST", b.Accepted(), s.Counters)
	}

	srv := ca.ServerConfig(t, "127.0.0.1")
	srv.NextProtos = []string{"h2"}
	b2 := testutil.NewBackend(t, testutil.BackendOptions{TLS: srv})
	p2 := autoPool(t, ca, b2.Addr(), &alpnRecorder{})
	c, proto, err = p2.DialH2(context.Background())
	if err != nil || proto != "h2" || c == nil {
		t.Fatalf("DialH2 = %v, %q, %v; want a connection, h2", c, proto, err)
	}
	c.Close()
	if s := p2.Snapshot(); s.Counters.Opened != 0 || len(s.Conns) != 0 {
		t.Errorf("counters %+v, %d conns; want nothing kept", s.Counters, len(s.Conns))
	}
}
