package server

// Client certificates of open connections under a changed policy.
//
// A TLS handshake verifies the client's certificate once, under the listener's client
// certificate policy of that moment: client_auth and the client CA bundle in force. Both
// can change while connections stay open, by a reload or by a client_ca_file replaced on
// disk. The Server keeps the policy in force as one pointer (Server.auth), replaced only
// when the policy really changed (a reload that rebuilds an equal bundle keeps it); each
// connection keeps the pointer it was verified under (conn.verified). A request that
// starts on a connection whose pointer is not the Server's has the connection's peer
// certificate chain checked again, by the rules of the handshake (clientAuth.verify):
// passed, the connection takes the new pointer (and the subject the routes see under the
// new policy) and the request is served; failed, the request is answered 421
// client_cert_no_longer_trusted and the connection ends (HTTP/1.1: closed after the
// answer; HTTP/2: drained, its other streams finish). A client may retry a 421 on a new
// connection (RFC 9110 §15.5.20), whose handshake applies the policy in force.
//
// A plain connection is checked too, as one that presented no certificate: a reload may
// give its listener (the same address keeps the same Server) TLS and client_auth require.
//
// A certificate that expires while its connection stays open (short-lived certificates:
// SPIFFE SVIDs of an hour, cert-manager's) fails the same way at the first request that
// starts at or after its end: the handshake, and each recheck that passes, keep when the
// verified chain stops verifying (conn.certEnd: the earliest NotAfter in the chain, since
// x509.Verify refuses a chain any of whose certificates expired; the latest such end when
// several chains verified), and each request compares its start time with it
// (certExpired). No recheck is needed to notice it, and no clock read: the request's own
// time is used.
//
// Cost when nothing changed: a request loads one pointer atomically and compares it, and
// compares its start's Unix second with certEnd. The pointer is read before the settings
// at accept (Serve) and stored after them (Update),
// and a reloaded bundle is in force before the pointer changes (ClientCAs.OnReload): a
// connection's pointer is never newer than the policy its handshake ran under, so a
// change is never missed (at worst checked once for nothing).

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"time"
)

// clientAuth is a listener's client certificate policy: what a handshake asks of the client
// (tls.NoClientCert, tls.VerifyClientCertIfGiven, tls.RequireAndVerifyClientCert) and the
// CAs a certificate must chain to (nil under tls.NoClientCert).
type clientAuth struct {
	typ  tls.ClientAuthType
	pool *x509.CertPool
}

// policyOf is the policy of st in force now.
func policyOf(st *Settings) *clientAuth {
	p := &clientAuth{}
	if st.TLS == nil || st.TLS.ClientAuth == tls.NoClientCert {
		return p
	}
	p.typ = st.TLS.ClientAuth
	if st.ClientCAs != nil {
		p.pool = st.ClientCAs.Pool()
	} else {
		p.pool = st.TLS.ClientCAs
	}
	return p
}

// same reports whether p verifies as q does: a bundle rebuilt by a reload from the same file
// is another pool with the same CAs.
func (p *clientAuth) same(q *clientAuth) bool {
	return p.typ == q.typ && (p.pool == q.pool || p.pool != nil && q.pool != nil && p.pool.Equal(q.pool))
}

// errNoClientCert is the recheck's failure of a connection without a certificate under
// tls.RequireAndVerifyClientCert.
var errNoClientCert = errors.New("the listener now requires a client certificate, and this connection presented none")

// verify checks the client certificate chain of st (a completed handshake's; nil for a
// plain connection, which presented none) against p, as crypto/tls's server handshake
// does: the chain must verify to p's CAs, with the intermediates the client sent and the
// client-auth key usage, now. It returns when the connection's verified certificate stops
// verifying under p (chainsEnd), zero when it keeps none under p (none presented, or under
// tls.NoClientCert none is asked for: the routes no longer see its subject, as a new
// connection's would not have one).
func (p *clientAuth) verify(st *tls.ConnectionState) (end time.Time, err error) {
	var certs []*x509.Certificate
	if st != nil {
		certs = st.PeerCertificates
	}
	switch {
	case p.typ == tls.NoClientCert:
		return time.Time{}, nil
	case len(certs) == 0 && p.typ == tls.RequireAndVerifyClientCert:
		return time.Time{}, errNoClientCert
	case len(certs) == 0:
		return time.Time{}, nil
	}
	opts := x509.VerifyOptions{
		Roots:         p.pool,
		CurrentTime:   time.Now(),
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	for _, c := range certs[1:] {
		opts.Intermediates.AddCert(c)
	}
	chains, err := certs[0].Verify(opts)
	if err != nil {
		return time.Time{}, err
	}
	return chainsEnd(chains), nil
}

// chainsEnd is when verified chains stop verifying: the earliest NotAfter in a chain (the
// leaf's, or an intermediate's or the root's that ends first: x509.Verify refuses a chain
// with any certificate expired, so a recheck or a new handshake would fail from then on),
// the latest over the chains (one that still verifies is enough). Zero without a chain.
func chainsEnd(chains [][]*x509.Certificate) time.Time {
	var end time.Time
	for _, ch := range chains {
		var e time.Time
		for i, c := range ch {
			if i == 0 || c.NotAfter.Before(e) {
				e = c.NotAfter
			}
		}
		if e.After(end) {
			end = e
		}
	}
	return end
}

// unixEnd is end (chainsEnd) as conn.certEnd keeps it: in Unix seconds, 0 for none. A
// certificate's NotAfter is a whole second (RFC 5280 §4.1.2.5), and an int64 compares in
// a fraction of time.Time's cost on every request.
func unixEnd(end time.Time) int64 {
	if end.IsZero() {
		return 0
	}
	return end.Unix()
}

// refreshClientAuth makes the policy of the current settings (and bundle) the listener's,
// unless it verifies as the one in force does: then the connections verified under that
// one need no check.
func (s *Server) refreshClientAuth() {
	s.authMu.Lock()
	defer s.authMu.Unlock()
	next := policyOf(s.settings.Load())
	if cur := s.auth.Load(); cur != nil && cur.same(next) {
		return
	}
	s.auth.Store(next)
}

// clientTrusted reports whether the connection's client certificate still passes the
// listener's policy, checking it again when the policy changed since it was last verified;
// err says why not; a connection whose verified chain has ended by now (the request's
// start) fails too. One atomic load and two compares when nothing changed; plain
// connections too (see the top of the file). The connection's goroutine only (HTTP/1.1),
// or its HTTP/2 read loop: both own conn.verified, conn.certEnd and conn.clientSubject
// then.
func (c *conn) clientTrusted(now time.Time) error {
	if p := c.srv.auth.Load(); p != c.verified {
		return c.recheckClient(p)
	}
	if c.certEnd != 0 && now.Unix() >= c.certEnd {
		return c.certExpired()
	}
	return nil
}

// errCertExpired is the failure of a connection whose client certificate (or a certificate
// of its verified chain) expired since it was verified.
var errCertExpired = errors.New("the client certificate (or its chain) expired while the connection was open")

// certExpired fails the connection whose verified chain expired (clientTrusted), as a
// failed recheck does, logged once: it stays failed (verified no longer matches any
// policy, so each later request gets distrust from recheckClient).
func (c *conn) certExpired() error {
	if c.distrust != nil {
		return c.distrust
	}
	c.verified = nil
	end := time.Unix(c.certEnd, 0).UTC()
	c.distrust = fmt.Errorf("%w at %s", errCertExpired, end.Format(time.RFC3339))
	c.srv.log.Info("client certificate expired while its connection was open; closing the connection",
		"remote", c.clientIP, "client_cert_subject", c.clientSubject, "not_after", end)
	return c.distrust
}

// recheckClient checks the connection's certificate against p (clientTrusted). Passed, the
// connection is verified under p from now on, with its subject rendered or dropped as p
// has it, and the end of the chain that verified now (chainsEnd); failed, it stays failed
// (an HTTP/2 connection draining refuses every stream it still takes), logged once.
func (c *conn) recheckClient(p *clientAuth) error {
	if c.distrust != nil {
		return c.distrust
	}
	end, err := p.verify(c.tls)
	if err != nil {
		c.distrust = err
		c.srv.log.Info("client certificate no longer trusted under the listener's changed client_auth or client_ca_file; closing the connection",
			"remote", c.clientIP, "client_cert_subject", c.clientSubject, "err", err)
		return err
	}
	c.verified, c.certEnd = p, unixEnd(end)
	switch {
	case end.IsZero():
		c.clientSubject = ""
	case c.clientSubject == "":
		c.clientSubject = c.tls.PeerCertificates[0].Subject.String()
	}
	return nil
}

// untrustedDetail is the detail of a client_cert_no_longer_trusted answer.
func untrustedDetail(err error) string {
	if errors.Is(err, errCertExpired) {
		return err.Error()
	}
	return "client certificate no longer trusted by the listener's client_auth and client_ca_file: " + err.Error()
}

// checkClient runs the connection's check (clientTrusted) for a new HTTP/2 stream, on the
// read loop, and gives the stream the subject in force. A failed check drains the
// connection (its streams in flight finish; the client opens new ones on a new connection)
// and the stream is refused (admit), as every stream taken until the last GOAWAY is.
func (o *h2Own) checkClient(s *Stream) {
	c := o.c
	failed := c.distrust != nil
	if err := c.clientTrusted(o.src.at); err != nil {
		s.distrust = err
		if !failed {
			go o.h.drain()
		}
	}
	s.subject = c.clientSubject
}
