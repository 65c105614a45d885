package connpool

// TLS to upstreams. A pool with Options.TLS runs the handshake inside the dial, under the
// connect timeout, and every connection it hands out is a tls.Conn over the socket. What the
// pool promises for plain connections holds over TLS:
//
//   - Bytes counted. The counting layer sits above the tls.Conn, so BytesWritten and
//     BytesRead count plaintext: the handshake, session tickets and alerts are not request
//     bytes, and "nothing was written" stays provable. A tls.Conn reports a Write only for
//     whole records written, so a request byte counted as written went out in a record the
//     backend can decrypt; one cut short cannot have been processed.
//   - Reuse check. A raw peek cannot judge a TLS connection: in TLS 1.3 a NewSessionTicket or
//     KeyUpdate, a close_notify alert and application data all look alike on the wire
//     (encrypted records of type application_data), and the tls.Conn may already hold records
//     read past the last response. So the check reads through the tls.Conn with a socket that
//     never waits (tlsSocket.now, netio.ReadNow): post-handshake messages are consumed (a ticket
//     goes to the session cache) and the read comes back empty; a close_notify gives io.EOF,
//     a FIN or reset an error: the backend is closing (backend_closed_idle); application data
//     is unsolicited_data. When the read stops for want of bytes, tlsSocket's record framing
//     tells whether a record is partly here: then the rest is in flight and could be
//     application data (a 408 before an idle close), so the connection is not reused either.
//     The check reads into a one-byte buffer of its own, never into the pooled bufio.Reader:
//     any application data condemns the connection, so nothing read there must be kept.
//   - Sweeper. Reads must come from the connection's owner, so the sweeper, which only peeks,
//     cannot judge bytes waiting on an idle TLS connection. It takes such a connection off
//     the idle stack (stateChecking; no Get can pop it), runs the check, and puts it back
//     where it was, or retires it as observed closed, so idle closes are seen and learned
//     from promptly, as over plain TCP. A FIN or reset with nothing before it is seen by the
//     peek itself.
//   - Closing. close_notify is sent without waiting (netio.WriteNow): a full send buffer (a
//     backend that stopped reading) must not hold up the request that closes the connection.
//     Interrupt closes the socket at once, without an alert.
//
// No splice: the socket carries records, so Conn.Socket returns nil and the proxy copies.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"

	"sluice/internal/netio"
	"sluice/internal/reason"
)

// sessionCacheSize is the number of TLS sessions a pool keeps for resumption. One would do:
// every connection of a pool has the same server name, the cache's key. A few leave room for
// a second key (a target dialed by address, without server name).
const sessionCacheSize = 4

// tlsSocket is the socket under a pooled tls.Conn, as the tls.Conn sees it. It follows the
// TLS record framing of the bytes read (so the reuse check knows whether a record is partly
// here) and, while now is set, neither reads nor writes wait. Only the connection's owner
// uses it.
type tlsSocket struct {
	net.Conn             // the socket: a *netio.Conn when it is TCP
	nio      *netio.Conn // the socket when it is TCP; else nil, and now has no effect
	tc       *tls.Conn   // the TLS connection over it
	now      bool
	frame    netio.TLSFraming
	one      [1]byte // the check's read buffer
}

func (s *tlsSocket) Read(b []byte) (int, error) {
	var n int
	var err error
	if s.now && s.nio != nil {
		n, err = s.nio.ReadNow(b)
	} else {
		n, err = s.Conn.Read(b)
	}
	s.frame.Feed(b[:n])
	return n, err
}

func (s *tlsSocket) Write(b []byte) (int, error) {
	if s.now && s.nio != nil {
		return s.nio.WriteNow(b)
	}
	return s.Conn.Write(b)
}

// check judges an idle TLS connection by reading, without waiting, the records that have
// arrived (see the top of this file): "" when only post-handshake messages or nothing came.
func (s *tlsSocket) check() CloseReason {
	if s.nio == nil {
		return "" // not a TCP socket (a test's Dial): no way to read without waiting
	}
	s.now = true
	n, err := s.tc.Read(s.one[:])
	s.now = false
	switch {
	case n > 0:
		return CloseUnsolicitedData
	case !errors.Is(err, netio.ErrWouldBlock):
		return CloseBackendClosedIdle // close_notify (io.EOF), FIN, reset, an alert
	case !s.frame.AtBoundary():
		return CloseUnsolicitedData // a record is partly here: it could be application data
	}
	return ""
}

// close sends close_notify if the socket takes it at once, then closes the socket.
func (s *tlsSocket) close() error {
	s.now = true
	return s.tc.Close()
}

// tlsConfig returns the pool's TLS client config: o's, with the session cache and, when o
// names no server, the target's host as the name verified (an IP address is verified
// against the certificate's IP addresses and sent as no SNI).
func tlsConfig(o *tls.Config, addr string) *tls.Config {
	if o == nil {
		return nil
	}
	c := o.Clone()
	if c.ServerName == "" {
		c.ServerName, _, _ = net.SplitHostPort(addr)
	}
	if !c.SessionTicketsDisabled && c.ClientSessionCache == nil {
		c.ClientSessionCache = tls.NewLRUClientSessionCache(sessionCacheSize)
	}
	return c
}

// ConnSessionCache is a TLS session cache that must know which connection a session came
// from: ForConn returns the view of it one new connection uses (the gateway's, for a watched
// client certificate, tags each session with the certificate its connection presented, not
// with the one in force when the session's ticket arrived, which can be later).
type ConnSessionCache interface {
	tls.ClientSessionCache
	ForConn() tls.ClientSessionCache
}

// ConnConfig returns the TLS config for one new connection made with c: c itself, or, when
// its session cache is a [ConnSessionCache], a clone with that connection's view of it.
// Every TLS dial with a pool's config (TLSConfig) goes through it.
func ConnConfig(c *tls.Config) *tls.Config {
	cc, ok := c.ClientSessionCache.(ConnSessionCache)
	if !ok {
		return c
	}
	c = c.Clone()
	c.ClientSessionCache = cc.ForConn()
	return c
}

// handshakeError is a failed TLS handshake on a connection that was dialed.
type handshakeError struct{ err error }

func (e *handshakeError) Error() string { return "tls handshake: " + e.err.Error() }
func (e *handshakeError) Unwrap() error { return e.err }

// handshake runs the TLS handshake on a new connection under ctx (the connect timeout). On
// failure the connection is closed.
func (p *Pool) handshake(ctx context.Context, nc net.Conn) (*tlsSocket, error) {
	s := &tlsSocket{Conn: netio.Wrap(nc)}
	s.nio, _ = s.Conn.(*netio.Conn)
	cfg := p.tls
	if p.alpnTLS != nil {
		cfg = p.alpnTLS
	}
	s.tc = tls.Client(s, ConnConfig(cfg))
	if err := s.tc.HandshakeContext(ctx); err != nil {
		_ = nc.Close()
		return nil, &handshakeError{err}
	}
	return s, nil
}

// tlsError turns a handshake with ctx (the request's, not the connect timeout's) that failed
// with err into its reason: upstream_tls_certificate when the target's certificate failed
// verification, else upstream_tls_handshake, 504 when time ran out (reason.DialTimedOut): the
// connect timeout, or ctx ended by a timeout cause (an HTTP/2 attempt's timer, for the dials
// of a protocol auto target), as h2pool answers its own handshakes.
func (p *Pool) tlsError(ctx context.Context, err error) *reason.Error {
	switch {
	case reason.CertificateFailed(err):
		return reason.New(502, reason.TLSCertificate, p.addr, err)
	case ctx.Err() != nil && reason.DialTimedOut(ctx, err):
		return reason.New(504, reason.TLSHandshake, p.addr, fmt.Errorf("%w (%w)", err, context.Cause(ctx)))
	case reason.DialTimedOut(ctx, err):
		return reason.New(504, reason.TLSHandshake, p.addr, fmt.Errorf("%w (within the connect timeout %v)", err, p.opts.ConnectTimeout))
	}
	return reason.New(502, reason.TLSHandshake, p.addr, err)
}

// IsTLSAlert reports whether err is a fatal TLS alert the backend sent (crypto/tls reports
// one as a *net.OpError with Op "remote error"). Before any response byte it means that the
// backend refused the TLS session: a TLS 1.3 server verifies the client's certificate after
// the client's side of the handshake has completed, so its refusal shows on the first read,
// after the request was written (TLS 1.2 refuses within the handshake, in the dial).
func IsTLSAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

// IsTLSLocalAlert reports whether err is a fatal TLS alert Sluice's side sent because of what
// the backend sent (crypto/tls reports one as a *net.OpError with Op "local error"): a
// request to renegotiate (a TLS 1.2 HelloRequest, which IIS sends to ask for a client
// certificate on some paths; Sluice does not renegotiate, "no renegotiation"), a record that
// failed its integrity check, a message out of place. Before any response byte it is a TLS
// failure, not the backend closing the connection.
func IsTLSLocalAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "local error"
}

// TLSConfig returns the TLS client config of the pool's connections (its session cache
// included), or nil when they are plain TCP. Callers must not modify it; an active health
// check dials with it, through [ConnConfig].
func (p *Pool) TLSConfig() *tls.Config { return p.tls }
