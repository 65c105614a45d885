package connpool

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/netio"
	"sluice/internal/reason"
	"sluice/internal/testutil"
)

// tlsPool returns a pool for addr whose connections are TLS, trusting ca; mod adjusts the
// TLS config (after the defaults) and the options.
func tlsPool(t *testing.T, ca *testutil.CA, addr string, mod func(*Options)) *Pool {
	t.Helper()
	return newPool(t, addr, func(o *Options) {
		o.TLS = &tls.Config{RootCAs: ca.Pool()}
		if mod != nil {
			mod(o)
		}
	})
}

// TestTLSExchangeAndReuse: requests go over TLS, one connection serves them all (the
// NewSessionTicket a TLS 1.3 server sends after the handshake must not make it look like an
// idle connection with unsolicited data), and the bytes counted are the plaintext request's.
func TestTLSExchangeAndReuse(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, v := range []uint16{tls.VersionTLS12, tls.VersionTLS13} {
		t.Run(tls.VersionName(v), func(t *testing.T) {
			srv := ca.ServerConfig(t, "127.0.0.1")
			srv.MaxVersion = v
			b := testutil.NewBackend(t, testutil.BackendOptions{TLS: srv})
			p := tlsPool(t, ca, b.Addr(), nil)
			for i := range 5 {
				a := exchange(p, http.MethodGet, strconv.Itoa(i))
				mustOK(t, a)
				if want := int64(len("GET /x HTTP/1.1\r\nHost: t\r\nX-Request-Id: 0\r\n\r\n")); a.written != want {
					t.Errorf("request %d: %d bytes written, want the plaintext request's %d", i, a.written, want)
				}
				if a.read != int64(len("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")) {
					t.Errorf("request %d: %d bytes read", i, a.read)
				}
			}
			s := p.Snapshot()
			if b.Accepted() != 1 || s.Counters.Reused != 4 || s.Counters.StaleCaught != 0 {
				t.Errorf("accepted %d, counters %+v; want 1 connection reused 4 times", b.Accepted(), s.Counters)
			}
			if s.Counters.TLSFull != 1 || s.Counters.TLSResumed != 0 || !s.Options.TLS || s.Options.ServerName != "127.0.0.1" {
				t.Errorf("TLS: %+v, options %+v", s.Counters, s.Options)
			}
		})
	}
}

// countingCache is a session cache that counts the sessions stored in it.
type countingCache struct {
	tls.ClientSessionCache
	puts atomic.Int64
}

func (c *countingCache) Put(key string, cs *tls.ClientSessionState) {
	c.puts.Add(1)
	c.ClientSessionCache.Put(key, cs)
}

// TestTLSResumption: the fresh connections that POSTs get resume the session of the first
// one (an abbreviated handshake), unless resumption is off.
func TestTLSResumption(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, tc := range []struct {
		name          string
		version       uint16
		off           bool
		full, resumed uint64
	}{
		{"TLS 1.3", tls.VersionTLS13, false, 1, 3},
		{"TLS 1.2", tls.VersionTLS12, false, 1, 3},
		{"off", tls.VersionTLS13, true, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := ca.ServerConfig(t, "127.0.0.1")
			srv.MaxVersion = tc.version
			b := testutil.NewBackend(t, testutil.BackendOptions{TLS: srv})
			p := tlsPool(t, ca, b.Addr(), func(o *Options) {
				o.UnsafeMaxIdle = 0 // every POST dials
				o.TLS.SessionTicketsDisabled = tc.off
			})
			for i := range 4 {
				mustOK(t, exchange(p, http.MethodPost, strconv.Itoa(i)))
			}
			c := p.Snapshot().Counters
			if b.Accepted() != 4 || c.TLSFull != tc.full || c.TLSResumed != tc.resumed {
				t.Errorf("accepted %d, handshakes full %d resumed %d; want 4, %d, %d", b.Accepted(), c.TLSFull, c.TLSResumed, tc.full, tc.resumed)
			}
		})
	}
}

// idleServer is a TLS server whose connections the test acts on while they are idle.
type idleServer struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []*serverConn
}

type serverConn struct {
	raw net.Conn
	tc  *tls.Conn
	at  time.Time // when it was accepted
}

func startIdleServer(t *testing.T, cfg *tls.Config) *idleServer {
	t.Helper()
	return startIdleServerHeld(t, cfg, 0)
}

// startIdleServerHeld is startIdleServer with every handshake held for delay after the
// accept (testutil.SlowHandshakeListener), when delay > 0.
func startIdleServerHeld(t *testing.T, cfg *tls.Config, delay time.Duration) *idleServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if delay > 0 {
		ln = testutil.SlowHandshakeListener{Listener: ln, Delay: delay}
	}
	s := &idleServer{ln: ln}
	var wg sync.WaitGroup
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.raw.Close()
		}
		s.mu.Unlock()
		wg.Wait()
	})
	wg.Go(func() {
		for {
			raw, err := ln.Accept()
			if err != nil {
				return
			}
			c := &serverConn{raw: raw, tc: tls.Server(raw, cfg), at: time.Now()}
			s.mu.Lock()
			s.conns = append(s.conns, c)
			s.mu.Unlock()
			wg.Go(func() { c.serve() })
		}
	})
	return s
}

// serve answers every request with a short 200 until the connection fails.
func (c *serverConn) serve() {
	br := bufio.NewReader(c.tc)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		io.Copy(io.Discard, req.Body)
		if _, err := io.WriteString(c.tc, "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"); err != nil {
			return
		}
	}
}

func (s *idleServer) conn(t *testing.T, i int) *serverConn {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if i >= len(s.conns) {
		t.Fatalf("server has %d connections, want #%d", len(s.conns), i)
	}
	return s.conns[i]
}

// TestTLSIdleBytes: what a TLS backend sends on an idle connection decides its reuse, found
// by the checkout check (sweeper off) and by the sweeper alike: nothing or a session ticket
// keeps it; a close_notify (with or without FIN), a FIN alone, application data, or part of
// a record retires it before any request is written on it.
func TestTLSIdleBytes(t *testing.T) {
	ca := testutil.NewCA(t)
	cases := []struct {
		name string
		act  func(c *serverConn)
		want CloseReason // "" = reused
	}{
		{"nothing", func(*serverConn) {}, ""},
		{"close_notify without FIN", func(c *serverConn) { c.tc.CloseWrite() }, CloseBackendClosedIdle},
		{"close_notify and FIN", func(c *serverConn) { c.tc.Close() }, CloseBackendClosedIdle},
		{"FIN without close_notify", func(c *serverConn) { c.raw.(*net.TCPConn).CloseWrite() }, CloseBackendClosedIdle},
		{"reset", func(c *serverConn) { c.raw.(*net.TCPConn).SetLinger(0); c.raw.Close() }, CloseBackendClosedIdle},
		{"application data", func(c *serverConn) {
			io.WriteString(c.tc, "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\n\r\n")
		}, CloseUnsolicitedData},
		{"part of a record", func(c *serverConn) { c.raw.Write([]byte{23, 3, 3, 0, 40, 1, 2, 3}) }, CloseUnsolicitedData},
	}
	for _, sweep := range []bool{false, true} {
		for _, tc := range cases {
			name := tc.name + "/checkout"
			if sweep {
				name = tc.name + "/sweeper"
			}
			t.Run(name, func(t *testing.T) {
				s := startIdleServer(t, ca.ServerConfig(t, "127.0.0.1"))
				p := tlsPool(t, ca, s.ln.Addr().String(), func(o *Options) {
					if !sweep {
						o.SweepInterval = time.Hour
					}
				})
				mustOK(t, exchange(p, http.MethodGet, "1"))
				tc.act(s.conn(t, 0))
				if sweep && tc.want != "" {
					testutil.WaitFor(t, 5*time.Second, "the sweeper to retire it", func() bool {
						return p.Snapshot().Counters.ClosedBy[tc.want] == 1
					})
				} else {
					time.Sleep(30 * time.Millisecond) // let the bytes arrive: the check must see them
				}
				a := exchange(p, http.MethodGet, "2")
				mustOK(t, a)
				c := p.Snapshot().Counters
				if tc.want == "" {
					if !a.reused || c.StaleCaught != 0 {
						t.Errorf("reused %v, counters %+v; want the idle connection reused", a.reused, c)
					}
					return
				}
				if a.reused || c.StaleCaught != 1 || c.ClosedBy[tc.want] != 1 {
					t.Errorf("reused %v, counters %+v; want a fresh connection and one %s", a.reused, c, tc.want)
				}
			})
		}
	}
}

// TestTLSTicketArrivesWhileIdle: a TLS 1.3 server that asks for a client certificate sends
// its session tickets only after the client's last handshake flight, so they arrive on the
// connection after the dial returned. Released without a request, the connection sits idle
// with the tickets waiting: the sweeper reads them (the session cache gets them before any
// request is made) and the connection stays reusable.
func TestTLSTicketArrivesWhileIdle(t *testing.T) {
	ca := testutil.NewCA(t)
	srv := ca.ServerConfig(t, "127.0.0.1")
	srv.ClientAuth, srv.ClientCAs = tls.RequireAndVerifyClientCert, ca.Pool()
	certPEM, keyPEM := ca.IssuePEM(t, testutil.CertOptions{CommonName: "sluice", Client: true})
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	s := startIdleServer(t, srv)
	cache := &countingCache{ClientSessionCache: tls.NewLRUClientSessionCache(4)}
	p := tlsPool(t, ca, s.ln.Addr().String(), func(o *Options) {
		o.TLS.Certificates = []tls.Certificate{cert}
		o.TLS.ClientSessionCache = cache
	})
	c, err := p.Get(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	p.Release(c, Outcome{Reusable: true, KeepAliveMax: -1})
	testutil.WaitFor(t, 5*time.Second, "the sweeper to read the tickets", func() bool { return cache.puts.Load() > 0 })
	a := exchange(p, http.MethodGet, "1")
	mustOK(t, a)
	if st := p.Snapshot().Counters; !a.reused || st.StaleCaught != 0 || st.Opened != 1 {
		t.Errorf("reused %v, counters %+v; want the idle connection reused", a.reused, st)
	}
}

// TestTLSHandshakeFailures: a failed handshake is the pool's error, with its reason code,
// counted; nothing was written.
//
// Timing (docs/design.md, "Timing tests on a loaded machine"): the rows whose handshake ends
// in the backend's verdict run under a connect timeout only a hang reaches (10 s; a 200 ms one
// ran out under load and turned a certificate error into a timeout). The silent backend's
// row needs the timeout to run out, so its timeout stays short, and the test measures what
// the timeout cut: a TCP connect to a listening loopback socket completes in the kernel, so
// a connect that itself ran out of time was the machine's late wake-up, not the pool's; that
// try is not counted and is repeated (3 tries). The dial is bounded from outside, so a
// handshake that the connect timeout does not bound fails instead of hanging.
func TestTLSHandshakeFailures(t *testing.T) {
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	tlsBackend := func(t *testing.T, cfg *tls.Config) string {
		return testutil.NewBackend(t, testutil.BackendOptions{TLS: cfg}).Addr()
	}
	silent := func(t *testing.T) string { // accepts, never answers the ClientHello
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln.Addr().String()
	}
	tls12mTLS := func(t *testing.T) string {
		cfg := ca.ServerConfig(t, "127.0.0.1")
		cfg.MaxVersion, cfg.ClientAuth, cfg.ClientCAs = tls.VersionTLS12, tls.RequireAndVerifyClientCert, ca.Pool()
		return tlsBackend(t, cfg)
	}
	const verdict, short = 10 * time.Second, 200 * time.Millisecond // connect timeouts
	cases := []struct {
		name    string
		addr    func(t *testing.T) string
		mod     func(*tls.Config)
		timeout time.Duration
		status  int
		code    reason.Code
		counter func(Counters) uint64
	}{
		{"untrusted CA", func(t *testing.T) string { return tlsBackend(t, other.ServerConfig(t, "127.0.0.1")) }, nil,
			verdict, 502, reason.TLSCertificate, func(c Counters) uint64 { return c.TLSCertErrors }},
		{"wrong name", func(t *testing.T) string { return tlsBackend(t, ca.ServerConfig(t, "a.test")) },
			func(c *tls.Config) { c.ServerName = "b.test" }, verdict, 502, reason.TLSCertificate, func(c Counters) uint64 { return c.TLSCertErrors }},
		{"IP not in the certificate", func(t *testing.T) string { return tlsBackend(t, ca.ServerConfig(t, "a.test")) }, nil,
			verdict, 502, reason.TLSCertificate, func(c Counters) uint64 { return c.TLSCertErrors }},
		{"plain HTTP backend", func(t *testing.T) string { return testutil.Echo(t).Addr() }, nil,
			verdict, 502, reason.TLSHandshake, func(c Counters) uint64 { return c.TLSHandshakeErrors }},
		{"client certificate required (TLS 1.2)", tls12mTLS, nil,
			verdict, 502, reason.TLSHandshake, func(c Counters) uint64 { return c.TLSHandshakeErrors }},
		{"no answer within the connect timeout", silent, nil,
			short, 504, reason.TLSHandshake, func(c Counters) uint64 { return c.TLSHandshakeErrors }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.addr(t)
			for try := 1; ; try++ {
				var tcpLate atomic.Bool
				p := tlsPool(t, ca, addr, func(o *Options) {
					o.ConnectTimeout = tc.timeout
					o.Dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
						var d net.Dialer
						c, err := d.DialContext(ctx, network, addr)
						tcpLate.Store(err != nil && ctx.Err() != nil)
						return c, err
					}
					if tc.mod != nil {
						tc.mod(o.TLS)
					}
				})
				start := time.Now()
				err := getBounded(t, p, tc.timeout+10*time.Second)
				elapsed := time.Since(start)
				if tcpLate.Load() {
					if try == 3 {
						t.Fatalf("3 tries: each TCP connect to a listening loopback socket ran out of the %v connect timeout (last: %v): the machine kept waking late", tc.timeout, err)
					}
					t.Logf("try %d: the TCP connect itself ran out of the %v connect timeout (%v): a late wake-up, not counted", try, tc.timeout, err)
					continue
				}
				var re *reason.Error
				if !errors.As(err, &re) || re.Code != tc.code || re.Status != tc.status {
					status := 0
					if re != nil {
						status = re.Status
					}
					t.Fatalf("Get = %d %v after %v; want %d %s", status, err, elapsed, tc.status, tc.code)
				}
				if tc.status == 504 && elapsed < tc.timeout {
					t.Errorf("Get gave up after %v, before the %v connect timeout", elapsed, tc.timeout)
				}
				c := p.Snapshot().Counters
				if tc.counter(c) != 1 || c.DialErrors != 1 || c.Opened != 0 {
					t.Errorf("counters %+v", c)
				}
				return
			}
		})
	}
}

// getBounded is p.Get for a fresh connection, failing the test when it has not returned
// within limit (a dial that its connect timeout does not bound).
func getBounded(t *testing.T, p *Pool, limit time.Duration) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		c, err := p.Get(context.Background(), true)
		if err == nil {
			p.Release(c, Outcome{Err: errors.New("unexpected success"), Reason: CloseRequestError})
		}
		done <- err
	}()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		t.Fatalf("Get did not return within %v: the connect timeout does not bound the dial", limit)
		return nil
	}
}

// TestTLSConnHasNoSocket: splice is off over TLS, Interrupt still wakes a blocked read, and
// lazy deadlines reach the socket.
func TestTLSConnHasNoSocket(t *testing.T) {
	ca := testutil.NewCA(t)
	b := testutil.NewBackend(t, testutil.BackendOptions{TLS: ca.ServerConfig(t, "127.0.0.1")})
	p := tlsPool(t, ca, b.Addr(), nil)
	c, err := p.Get(context.Background(), true)
	if err != nil {
		t.Fatal(err)
	}
	if c.Socket() != nil {
		t.Error("Socket() is not nil on a TLS connection")
	}
	if err := netio.ExtendRead(c.NetConn(), time.Now().Add(30*time.Millisecond), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.R.ReadByte(); !isTimeout(err) {
		t.Errorf("read under a lazy deadline = %v, want a timeout", err)
	}
	netio.ExtendRead(c.NetConn(), time.Time{}, 0)
	done := make(chan error, 1)
	go func() {
		_, err := c.R.ReadByte() // the backend sends nothing unasked
		done <- err
	}()
	time.Sleep(20 * time.Millisecond)
	c.Interrupt()
	select {
	case err := <-done:
		if err == nil {
			t.Error("read after Interrupt succeeded")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Interrupt did not wake the read")
	}
	p.Release(c, Outcome{Err: errors.New("interrupted"), Reason: CloseRequestError})
}

// TestTLSSessionsForConn: each TLS dial (the pool's own, DialH2's) uses its own view of a
// session cache that is a ConnSessionCache, so sessions are told apart by the connection
// they came from.
func TestTLSSessionsForConn(t *testing.T) {
	ca := testutil.NewCA(t)
	b := testutil.NewBackend(t, testutil.BackendOptions{TLS: ca.ServerConfig(t, "127.0.0.1")})
	cache := testutil.NewSessionViews()
	p := tlsPool(t, ca, b.Addr(), func(o *Options) {
		o.UnsafeMaxIdle = 0 // every POST dials
		o.TLS.ClientSessionCache = cache
	})
	for i := range 3 {
		mustOK(t, exchange(p, http.MethodPost, strconv.Itoa(i)))
	}
	if v, n := cache.Views(), b.Accepted(); v != int64(n) || n != 3 {
		t.Errorf("%d views of the session cache for %d connections; want 3 and 3", v, n)
	}
}
