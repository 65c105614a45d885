package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"sluice/internal/certs"
	"sluice/internal/netio"
)

// TLSObserver is an optional Handler capability: it is told of every TLS handshake on a
// listener, the state of a completed one or why one failed, and of every connection that
// ended on a TLS error after its handshake, for logs and metrics.
type TLSObserver interface {
	Handshake(listener string, st *tls.ConnectionState, err error)
	// TLSFailed counts a connection that ended on a TLS error after its handshake; reason
	// is [TLSFailure]'s.
	TLSFailed(listener, reason string)
}

// tlsConn is a TLS connection whose deadlines are armed lazily on the socket underneath
// (netio.Extender), so that TLS requests re-arm runtime timers as rarely as plain ones.
type tlsConn struct {
	*tls.Conn
	raw  net.Conn // the socket's connection: netio.ExtendRead arms it lazily when it can
	sock *tlsSocket
	// failed is the first error a read returned but a timeout or a stopped watch: the
	// connection ends on it (noteTLSFailure tells a TLS error from a client gone). Atomic: a
	// tunnel reads the client on a goroutine of its own.
	failed atomic.Pointer[error]
}

// Read notes the first error that will end the connection (failed). A timeout may not (the
// short wait for the next request ends in one each time a kept-alive client pauses), nor a
// body wait stopped by its watch (tlsWatchStopped: an early response, after which the
// lingering close reads on and may meet the real failure).
func (c *tlsConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if err != nil && c.failed.Load() == nil && !errors.Is(err, os.ErrDeadlineExceeded) && !errors.Is(err, netio.ErrWatchStopped) {
		c.noteFailed(err)
	}
	return n, err
}

// noteFailed keeps err as the connection's failure unless one is kept already. A function of
// its own: Read taking its own err's address would move err to the heap at every read
// (the parameter here, inlined or not, is made only on this path).
func (c *tlsConn) noteFailed(err error) { c.failed.CompareAndSwap(nil, &err) }

// Write is a write of the connection's own, which tlsSocket tells apart from crypto/tls's.
func (c *tlsConn) Write(b []byte) (int, error) {
	c.sock.ours.Store(true)
	n, err := c.Conn.Write(b)
	c.sock.ours.Store(false)
	return n, err
}

// Close sends close_notify under crypto/tls's own deadline (5 s), and closes.
func (c *tlsConn) Close() error {
	c.sock.ours.Store(true)
	return c.Conn.Close()
}

func (c *tlsConn) ExtendRead(t time.Time, late time.Duration) error {
	return netio.ExtendRead(c.raw, t, late)
}
func (c *tlsConn) ExtendWrite(t time.Time, late time.Duration) error {
	return netio.ExtendWrite(c.raw, t, late)
}

var _ netio.Extender = (*tlsConn)(nil)

// handshake runs the TLS handshake of a new connection under the listener's handshake
// timeout, waiting as idle (Shutdown ends a handshake that has not finished). On success the
// connection reads and writes through TLS from then on; one that negotiated acme-tls/1
// ends there.
func (c *conn) handshake() bool {
	sock := &tlsSocket{Conn: c.rw}
	tc := tls.Server(sock, c.st.TLS)
	end := time.Now().Add(c.st.HandshakeTimeout)
	if !c.armIdle(end, 0) {
		return false
	}
	c.rw.SetWriteDeadline(end)
	err := tc.HandshakeContext(c.ctx)
	c.setActive()
	obs, _ := c.srv.handler.(TLSObserver)
	if err != nil && sock.frame.Type() == recordTypeAlert && TLSFailure(err) == "bad_record_mac" {
		// A TLS 1.3 client that aborts before it has its handshake keys sends its alert in
		// plaintext, which crypto/tls, reading with the client's keys by then, fails to
		// decrypt: OpenSSL (so curl) does, when it does not trust the certificate.
		err = fmt.Errorf("%w: %w", errPlaintextAlert, err)
	}
	if err != nil {
		if obs != nil {
			obs.Handshake(c.st.Name, nil, err)
		}
		c.srv.log.Debug("TLS handshake failed", "remote", c.clientIP, "reason", HandshakeFailure(err),
			"sni", tc.ConnectionState().ServerName, "err", err)
		return false
	}
	st := tc.ConnectionState()
	c.tls = &st
	c.clientSubject = clientSubject(&st)
	c.certEnd = unixEnd(chainsEnd(st.VerifiedChains))
	if obs != nil {
		obs.Handshake(c.st.Name, c.tls, nil)
	}
	if st.NegotiatedProtocol == acmeTLS1 {
		// An ACME TLS-ALPN-01 validation ends with its handshake (RFC 8737 §3); nothing is
		// served on acme-tls/1, whatever certificate a client that offered it got.
		return false
	}
	sock.wto = c.st.WriteTimeout
	c.rw = &tlsConn{Conn: tc, raw: c.rw, sock: sock}
	c.tlsSock, c.nio = c.nio, nil // no peeks or splices under TLS: the socket's bytes are records
	c.tlsFrame = &sock.frame
	return true
}

// acmeTLS1 is the ALPN protocol of ACME TLS-ALPN-01 validation handshakes.
const acmeTLS1 = "acme-tls/1"

// tlsSocket is the socket under a client's TLS connection. It follows the record framing
// of the bytes crypto/tls reads, so that a wait for the next request that found no
// plaintext can tell whether crypto/tls holds the start of a record (waitNextRequest), and
// it gives crypto/tls's own writes a live deadline (Write).
type tlsSocket struct {
	net.Conn
	frame netio.TLSFraming
	wto   time.Duration // write_timeout, once the handshake is done
	ours  atomic.Bool   // the connection's own write (tlsConn.Write, Close) runs
}

// Write retries, once, under write_timeout from now, a write of crypto/tls's own (not the
// connection's) that met a deadline gone by: crypto/tls answers a client's KeyUpdate (TLS
// 1.3, update_requested), or sends an alert, inside a read, under the write deadline that
// the connection's last write left, long past after an idle wait or a long upload. Failed,
// crypto/tls kept the failure for the next write: the next response was never sent, and
// the close_notify went out with a record number skipped ("bad record mac" at the client).
// The connection's own writes arm their deadline first; a failure of theirs stands.
func (s *tlsSocket) Write(b []byte) (int, error) {
	n, err := s.Conn.Write(b)
	if n == 0 && s.wto > 0 && !s.ours.Load() && errors.Is(err, os.ErrDeadlineExceeded) {
		t := time.Now().Add(s.wto)
		if nc, ok := s.Conn.(*netio.Conn); ok {
			// Below netio's record of the deadline, which stays the past one: the
			// connection's next write arms its own (a reader and a writer may run at
			// once under HTTP/2, and only the writer's side keeps that record).
			nc.Conn.SetWriteDeadline(t)
		} else {
			s.Conn.SetWriteDeadline(t)
		}
		return s.Conn.Write(b)
	}
	return n, err
}

// Read reads the next bytes of records for crypto/tls. A wait that its watch stopped
// (Exchange.WatchBody) fails as tlsWatchStopped: crypto/tls keeps any other failure of the
// socket's Read as the failure of every later Read of the connection, which would leave the
// lingering close after an early response nothing to read (the client's further body bytes
// unread, the close a reset). A temporary one it returns as it is, keeping the bytes of a
// record it has begun, as it does for a timeout; its writes are unaffected either way.
func (s *tlsSocket) Read(b []byte) (int, error) {
	n, err := s.Conn.Read(b)
	s.frame.Feed(b[:n])
	if err != nil && errors.Is(err, netio.ErrWatchStopped) {
		err = tlsWatchStopped{}
	}
	return n, err
}

// tlsWatchStopped is netio.ErrWatchStopped as crypto/tls sees it: a temporary net.Error (it
// looks at Temporary, not through wrapping), yet no timeout; errors.Is still finds
// netio.ErrWatchStopped.
type tlsWatchStopped struct{}

func (tlsWatchStopped) Error() string   { return netio.ErrWatchStopped.Error() }
func (tlsWatchStopped) Unwrap() error   { return netio.ErrWatchStopped }
func (tlsWatchStopped) Timeout() bool   { return false }
func (tlsWatchStopped) Temporary() bool { return true }

var _ net.Error = tlsWatchStopped{}

// clientSubject is the subject of st's client certificate in RFC 2253 form
// (CN=svc-billing,O=Example) when it verified against the listener's client CAs, else "".
// Rendering allocates (8 times for a subject of one CN), so it is done once per connection,
// at its handshake: the requests of a kept-alive or HTTP/2 connection share it.
func clientSubject(st *tls.ConnectionState) string {
	if len(st.VerifiedChains) == 0 || len(st.PeerCertificates) == 0 {
		return ""
	}
	return st.PeerCertificates[0].Subject.String()
}

// noteTLSFailure logs (at debug level, as a failed handshake is) and counts the TLS error
// the connection ended on, if it did: crypto/tls found it after the handshake, sent its
// alert and failed the read. A client that closed (a FIN, close_notify, a reset) or a
// timeout is none. It runs once, as the connection ends, so the requests of a healthy
// connection pay only Read's check of a nil error.
func (c *conn) noteTLSFailure() {
	tc, ok := c.rw.(*tlsConn)
	if !ok {
		return
	}
	p := tc.failed.Load()
	if p == nil {
		return
	}
	why := TLSFailure(*p)
	if why == "" {
		return
	}
	c.srv.log.Debug("TLS connection failed", "remote", c.clientIP, "reason", why, "err", *p)
	if obs, ok := c.srv.handler.(TLSObserver); ok {
		obs.TLSFailed(c.st.Name, why)
	}
}

// The texts of the alerts TLSFailure tells apart (crypto/tls's own type for the alerts it
// sends is unexported; AlertError has the same text).
var (
	alertBadRecordMAC   = tls.AlertError(20).Error()
	alertRecordOverflow = tls.AlertError(22).Error()
)

// TLSFailure names the TLS error a connection ended on after its handshake, in a few stable
// words for logs and metrics, or "" when err is none (the client closed, with or without
// close_notify, or reset the connection; a timeout): bad_record_mac (a record failed its
// integrity check: corrupted, forged, or the client's keys out of step), record_overflow
// (a record over the size limit), renegotiation (a ClientHello after the handshake),
// record_flood (more than 16 records in a row without data: key updates, empty records,
// warning alerts), alert (the client's, other than close_notify), or protocol_error (any
// other record or message crypto/tls refused). crypto/tls answered each but alert with an
// alert of its own.
func TLSFailure(err error) string {
	var rh tls.RecordHeaderError
	var oe *net.OpError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &rh):
		if strings.Contains(rh.Msg, "oversized record") {
			return "record_overflow"
		}
		return "protocol_error"
	case clientAlert(err):
		return "alert"
	case errors.As(err, &oe) && oe.Op == "local error":
		switch oe.Err.Error() {
		case alertBadRecordMAC:
			return "bad_record_mac"
		case alertRecordOverflow:
			return "record_overflow"
		}
		return "protocol_error"
	}
	// What is left of crypto/tls's failures are plain errors, told apart by their text;
	// anything else (the socket's errors, EOF) is the client gone.
	switch msg := err.Error(); {
	case !strings.HasPrefix(msg, "tls: "):
		return ""
	case strings.Contains(msg, "too many"): // "ignored records", "non-advancing records"
		return "record_flood"
	case strings.Contains(msg, "clientHelloMsg"): // "received unexpected handshake message of type *tls.clientHelloMsg"
		return "renegotiation"
	}
	return "protocol_error"
}

// clientAlert reports whether err is an alert the client sent (crypto/tls's "remote error"),
// other than close_notify (which reads as EOF).
func clientAlert(err error) bool {
	var oe *net.OpError
	return errors.As(err, &oe) && oe.Op == "remote error"
}

// recordTypeAlert is the TLS record content type of alerts (RFC 8446 §5.1).
const recordTypeAlert = 21

// errPlaintextAlert marks a handshake that failed on an alert the client sent in plaintext
// after the server had switched to its keys (handshake).
var errPlaintextAlert = errors.New("the client aborted with an alert sent in plaintext")

// HandshakeFailure names why a handshake failed, in a few stable words for logs and
// metrics: timeout, not_tls (plain HTTP sent to a TLS port), unknown_sni, bad_certificate
// (the client's, under mutual TLS), alert (the client aborted with one: most often it does
// not trust the server's certificate), client_closed, or handshake_error.
func HandshakeFailure(err error) string {
	var rh tls.RecordHeaderError
	var ae tls.AlertError
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout"
	case errors.As(err, &rh):
		return "not_tls"
	case err == nil:
		return ""
	case certs.IsUnknownName(err):
		return "unknown_sni"
	case errors.Is(err, errPlaintextAlert), clientAlert(err), errors.As(err, &ae):
		// Before the text checks: a client that rejects the server's certificate says
		// "bad certificate" (Go's) too, and that is not the client's certificate.
		return "alert"
	case containsAny(err.Error(), "client didn't provide a certificate", "failed to verify certificate", "bad certificate", "certificate required"):
		return "bad_certificate"
	case errors.Is(err, net.ErrClosed), errors.Is(err, io.EOF), containsAny(err.Error(), "EOF", "connection reset"):
		return "client_closed"
	}
	return "handshake_error"
}

// containsAny reports whether s contains one of subs. crypto/tls wraps some of its
// failures in plain errors, so a few are told apart by their text.
func containsAny(s string, subs ...string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
