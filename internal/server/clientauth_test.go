package server

import (
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net"
	"testing"
	"time"

	"sluice/internal/certs"
	"sluice/internal/testutil"
)

// TestClientAuthPolicyChanges: the listener's client certificate policy is replaced (and
// the open connections checked again) only when it changed: a reload that rebuilds the
// same bundle from the same file keeps it, so that no connection pays a chain verification
// for nothing; a changed bundle or client_auth replaces it.
func TestClientAuthPolicyChanges(t *testing.T) {
	ca1, ca2 := testutil.NewCA(t), testutil.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	settings := func(auth tls.ClientAuthType, ca *testutil.CA) Settings {
		cas, err := certs.NewClientCAs(ca.CAFile(t), nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		return Settings{Name: "l", TLS: &tls.Config{ClientAuth: auth, ClientCAs: cas.Pool()}, ClientCAs: cas}
	}
	s := New(ln, settings(tls.RequireAndVerifyClientCert, ca1), nil, slog.New(slog.DiscardHandler))
	for _, tc := range []struct {
		name    string
		st      Settings
		changed bool
	}{
		{"the same bundle loaded again", settings(tls.RequireAndVerifyClientCert, ca1), false},
		{"another CA", settings(tls.RequireAndVerifyClientCert, ca2), true},
		{"optional", settings(tls.VerifyClientCertIfGiven, ca2), true},
		{"none", settings(tls.NoClientCert, ca2), true},
		{"none with another bundle", settings(tls.NoClientCert, ca1), false},
		{"plain", Settings{Name: "l"}, false},
	} {
		before := s.auth.Load()
		s.Update(tc.st)
		if changed := s.auth.Load() != before; changed != tc.changed {
			t.Errorf("%s: policy replaced %v, want %v", tc.name, changed, tc.changed)
		}
	}
}

// TestClientAuthVerify: an open connection's certificate is checked again by the rules of
// the handshake: a chain to a CA of the bundle, with the clientAuth usage, not expired; no
// certificate is refused only under require; under none nothing is verified (no subject).
func TestClientAuthVerify(t *testing.T) {
	ca1, ca2 := testutil.NewCA(t), testutil.NewCA(t)
	leaf := func(ca *testutil.CA, o testutil.CertOptions) *tls.ConnectionState {
		c, err := tls.X509KeyPair(ca.IssuePEM(t, o))
		if err != nil {
			t.Fatal(err)
		}
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Leaf}}
	}
	good := leaf(ca1, testutil.CertOptions{CommonName: "svc", Client: true})
	serverOnly := leaf(ca1, testutil.CertOptions{CommonName: "svc"})
	expired := leaf(ca1, testutil.CertOptions{CommonName: "svc", Client: true, NotAfter: time.Now().Add(-time.Minute)})
	none := &tls.ConnectionState{}
	for _, tc := range []struct {
		name     string
		p        clientAuth
		st       *tls.ConnectionState
		verified bool
		fails    bool
	}{
		{"its CA", clientAuth{tls.RequireAndVerifyClientCert, ca1.Pool()}, good, true, false},
		{"its CA, optional", clientAuth{tls.VerifyClientCertIfGiven, ca1.Pool()}, good, true, false},
		{"another CA", clientAuth{tls.VerifyClientCertIfGiven, ca2.Pool()}, good, false, true},
		{"without the clientAuth usage", clientAuth{tls.RequireAndVerifyClientCert, ca1.Pool()}, serverOnly, false, true},
		{"expired", clientAuth{tls.RequireAndVerifyClientCert, ca1.Pool()}, expired, false, true},
		{"none given, optional", clientAuth{tls.VerifyClientCertIfGiven, ca1.Pool()}, none, false, false},
		{"none given, require", clientAuth{tls.RequireAndVerifyClientCert, ca1.Pool()}, none, false, true},
		{"client_auth none", clientAuth{tls.NoClientCert, nil}, good, false, false},
	} {
		verified, err := tc.p.verify(tc.st)
		if verified != tc.verified || (err != nil) != tc.fails {
			t.Errorf("%s: verified %v, err %v; want verified %v, failure %v", tc.name, verified, err, tc.verified, tc.fails)
		}
	}
}

// BenchmarkClientTrusted is the cost a request on a TLS connection pays when the policy did
// not change (one atomic load), and the one-off check of a connection after a change.
func BenchmarkClientTrusted(b *testing.B) {
	ca := testutil.NewCA(b)
	c, err := tls.X509KeyPair(ca.IssuePEM(b, testutil.CertOptions{CommonName: "svc", Client: true}))
	if err != nil {
		b.Fatal(err)
	}
	st := &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Leaf}}
	p := &clientAuth{tls.RequireAndVerifyClientCert, ca.Pool()}
	b.Run("unchanged", func(b *testing.B) {
		s := &Server{}
		s.auth.Store(p)
		cn := &conn{srv: s, tls: st, verified: p}
		b.ReportAllocs()
		for b.Loop() {
			if cn.clientTrusted() != nil {
				b.Fatal("refused")
			}
		}
	})
	b.Run("recheck", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := p.verify(st); err != nil {
				b.Fatal(err)
			}
		}
	})
}
