// Package server accepts client connections and runs the HTTP/1.1 request loop on each, using
// Sluice's own codec (internal/h1). It owns everything about the client side of a request:
// timeouts that stop slow clients, strict parsing (a malformed request is answered 4xx and the
// connection closed), keep-alive, and graceful shutdown that finishes in-flight requests.
// What to do with a request is the Handler's business.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/certs"
	"sluice/internal/h1"
)

// Handler serves one request. It must consume what it needs of the request body and write a
// complete response through the Exchange before returning.
type Handler interface {
	ServeH1(ex *Exchange)
}

// Settings are the per-listener client-side limits. A listener reads them per connection, so a
// reload that changes them applies to connections accepted afterwards; the client certificate
// policy (TLS.ClientAuth, ClientCAs) is the exception, checked again on open connections.
type Settings struct {
	Name              string
	ReadHeaderTimeout time.Duration
	ReadTimeout       time.Duration
	WriteTimeout      time.Duration
	IdleTimeout       time.Duration
	Limits            h1.Limits
	MaxBodyBytes      int64 // 0: unlimited
	// Underscores is what becomes of request header and trailer fields whose name holds "_".
	Underscores Underscores
	// TLS, when set, terminates TLS on the listener's connections; HandshakeTimeout bounds
	// each handshake.
	TLS              *tls.Config
	HandshakeTimeout time.Duration
	// ClientCAs, when set, is the client CA bundle that TLS verifies client certificates
	// against (TLS.ClientAuth): when it changes on disk, or a reload changes it or
	// TLS.ClientAuth, the open connections' certificates are checked again at their next
	// request (clientauth.go). Unset, TLS.ClientCAs is the bundle.
	ClientCAs *certs.ClientCAs
	// ExposeDetails adds why a malformed request was refused ("detail") to the 4xx body
	// (config errors.expose_details); the access log has it either way.
	ExposeDetails bool
	// H2, when set, serves HTTP/2 on the listener's connections (h2.go): over TLS when the
	// client picks "h2" by ALPN (TLS must offer it), over plain TCP when H2.Cleartext is set
	// and the client starts with the HTTP/2 preface. nil: HTTP/1.x only.
	H2 *H2Settings
	// ProxyProtocol, when set, reports whether a peer is a trusted proxy whose connections
	// start with a PROXY protocol header (listeners[].proxy_protocol; see proxyproto.go).
	// nil: no PROXY protocol.
	ProxyProtocol func(peer netip.Addr) bool
}

// Underscores is a listener's policy for request fields whose name holds "_". Such names are
// valid tokens, but CGI-style backends (and frameworks on top of them) read "_" as "-", so
// "X_Forwarded_For" would pass there for the gateway's own X-Forwarded-For, or
// "Transfer_Encoding" for framing. nginx drops them by default, and so does Sluice.
type Underscores uint8

const (
	// UnderscoresDrop removes such header fields before the handler sees the request, and
	// such trailer fields from the body's trailer section (the default).
	UnderscoresDrop Underscores = iota
	// UnderscoresAllow leaves them.
	UnderscoresAllow
	// UnderscoresReject answers a request with such a header field 400 underscore_in_header
	// and closes the connection; trailer fields, which come after the request was handed on,
	// are dropped.
	UnderscoresReject
)

// Server serves one listening socket.
type Server struct {
	handler  Handler
	log      *slog.Logger
	settings atomic.Pointer[Settings]
	ln       net.Listener
	// auth is the client certificate policy in force (clientauth.go); authMu serialises
	// its changes.
	auth   atomic.Pointer[clientAuth]
	authMu sync.Mutex

	mu       sync.Mutex
	conns    map[*conn]struct{}
	closing  atomic.Bool
	connsWG  sync.WaitGroup
	acceptWG sync.WaitGroup
}

// New returns a Server for ln. Call Serve to start accepting.
func New(ln net.Listener, s Settings, h Handler, log *slog.Logger) *Server {
	srv := &Server{handler: h, log: log.With("component", "server", "listener", s.Name), ln: ln, conns: map[*conn]struct{}{}}
	srv.Update(s)
	return srv
}

// Addr is the listening address.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Update replaces the settings used for connections accepted from now on. A changed client
// certificate policy (TLS.ClientAuth, ClientCAs) applies to the open connections too: each
// has its certificate checked again at its next request (clientauth.go).
func (s *Server) Update(st Settings) {
	s.settings.Store(&st)
	if st.ClientCAs != nil {
		st.ClientCAs.OnReload(s.refreshClientAuth)
	}
	s.refreshClientAuth() // after the settings: see clientauth.go
}

// Serve accepts connections until Shutdown. It returns nil after Shutdown.
func (s *Server) Serve() error {
	s.acceptWG.Add(1)
	defer s.acceptWG.Done()
	var delay time.Duration
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, syscallEMFILE) {
				delay = min(max(delay*2, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", "err", err, "delay", delay)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		auth := s.auth.Load() // before the settings: see clientauth.go
		c := newConn(s, nc, s.settings.Load())
		c.verified = auth
		s.mu.Lock()
		if s.closing.Load() {
			s.mu.Unlock()
			nc.Close()
			continue
		}
		s.conns[c] = struct{}{}
		s.connsWG.Add(1)
		s.mu.Unlock()
		go c.serve(false)
	}
}

func (s *Server) forget(c *conn) {
	s.mu.Lock()
	delete(s.conns, c)
	s.mu.Unlock()
	s.connsWG.Done()
}

// Shutdown stops accepting, closes idle connections, lets in-flight requests finish (each
// answered with "Connection: close"), and returns when all connections are gone or ctx ends.
// Then it cancels the requests still running (their contexts end with a gateway_shutting_down
// cause, which stops their upstream waits), closes their connections, waits for their
// handlers to return and returns ctx's error.
func (s *Server) Shutdown(ctx context.Context) error {
	s.closing.Store(true)
	s.ln.Close()
	s.acceptWG.Wait()
	s.mu.Lock()
	for c := range s.conns {
		c.wakeIfIdle()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.connsWG.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.mu.Lock()
		conns := make([]*conn, 0, len(s.conns))
		for c := range s.conns {
			conns = append(conns, c)
		}
		s.mu.Unlock()
		// Side by side: a request's cancel hook may wait a little (a tunnel's stop gives
		// its WebSocket Close frames up to a second), and such waits must not add up.
		var closing sync.WaitGroup
		for _, c := range conns {
			closing.Go(func() {
				c.cancelRequest(errForcedShutdown)
				c.nc.Close()
			})
		}
		closing.Wait()
		<-done
		return ctx.Err()
	}
}

// Active returns the number of open client connections.
func (s *Server) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}
