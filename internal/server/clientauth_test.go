package server

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"log/slog"
	"math/big"
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
	root, chained, leafOnly := intermediateChain(t)
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
		{"plain connection, optional", clientAuth{tls.VerifyClientCertIfGiven, ca1.Pool()}, nil, false, false},
		{"plain connection, require", clientAuth{tls.RequireAndVerifyClientCert, ca1.Pool()}, nil, false, true},
		{"client_auth none", clientAuth{tls.NoClientCert, nil}, good, false, false},
		{"through the intermediate it sent", clientAuth{tls.RequireAndVerifyClientCert, root}, chained, true, false},
		{"without the intermediate", clientAuth{tls.RequireAndVerifyClientCert, root}, leafOnly, false, true},
	} {
		end, err := tc.p.verify(tc.st)
		if verified := !end.IsZero(); verified != tc.verified || (err != nil) != tc.fails {
			t.Errorf("%s: verified %v, err %v; want verified %v, failure %v", tc.name, verified, err, tc.verified, tc.fails)
		}
	}
}

// intermediateChain is a root's pool and the state of a client whose leaf a CA under the
// root signed: with the intermediate sent (chained), and without it (leafOnly).
func intermediateChain(t *testing.T) (root *x509.CertPool, chained, leafOnly *tls.ConnectionState) {
	t.Helper()
	issue := func(tmpl, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (*x509.Certificate, *ecdsa.PrivateKey) {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		if parent == nil {
			parent, parentKey = tmpl, key
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
		if err != nil {
			t.Fatal(err)
		}
		c, err := x509.ParseCertificate(der)
		if err != nil {
			t.Fatal(err)
		}
		return c, key
	}
	now := time.Now()
	ca := func(serial int64, cn string) *x509.Certificate {
		return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: cn},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true,
			BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	}
	rootCert, rootKey := issue(ca(1, "root"), nil, nil)
	mid, midKey := issue(ca(2, "intermediate"), rootCert, rootKey)
	leaf, _ := issue(&x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: "svc"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}, mid, midKey)
	root = x509.NewCertPool()
	root.AddCert(rootCert)
	return root, &tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf, mid}},
		&tls.ConnectionState{PeerCertificates: []*x509.Certificate{leaf}}
}

// clientState is a new CA and the state of a connection whose client certificate it issued.
func clientState(tb testing.TB) (*testutil.CA, *tls.ConnectionState) {
	tb.Helper()
	ca := testutil.NewCA(tb)
	c, err := tls.X509KeyPair(ca.IssuePEM(tb, testutil.CertOptions{CommonName: "svc", Client: true}))
	if err != nil {
		tb.Fatal(err)
	}
	return ca, &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c.Leaf}}
}

// BenchmarkClientTrusted is the cost a request on a TLS connection pays when the policy did
// not change (one atomic load and the expiry's compare), and the one-off check of a connection after a change.
func BenchmarkClientTrusted(b *testing.B) {
	ca, st := clientState(b)
	p := &clientAuth{tls.RequireAndVerifyClientCert, ca.Pool()}
	b.Run("unchanged", func(b *testing.B) {
		s := &Server{}
		s.auth.Store(p)
		now := time.Now()
		cn := &conn{srv: s, tls: st, verified: p, certEnd: st.PeerCertificates[0].NotAfter.Unix()}
		b.ReportAllocs()
		for b.Loop() {
			if cn.clientTrusted(now) != nil {
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

// TestClientCertExpiry: a request that starts at or after the verified chain's end is
// refused (once logged, then the same error), one before it is not; a recheck that passes
// takes the end of the chain it verified, so under client_auth none (no certificate kept)
// an expiry no longer refuses anything.
func TestClientCertExpiry(t *testing.T) {
	ca, st := clientState(t)
	leaf := st.PeerCertificates[0]
	p := &clientAuth{tls.VerifyClientCertIfGiven, ca.Pool()}
	end := time.Now().Add(time.Minute).Truncate(time.Second) // as x509 keeps NotAfter
	newConn := func() *conn {
		s := &Server{log: slog.New(slog.DiscardHandler)}
		s.auth.Store(p)
		return &conn{srv: s, tls: st, verified: p, certEnd: end.Unix(), clientSubject: "CN=svc"}
	}
	cn := newConn()
	if err := cn.clientTrusted(end.Add(-time.Nanosecond)); err != nil {
		t.Fatalf("just before the end: %v, want trusted", err)
	}
	err := cn.clientTrusted(end)
	if !errors.Is(err, errCertExpired) {
		t.Fatalf("after the end: %v, want errCertExpired", err)
	}
	if again := cn.clientTrusted(end.Add(time.Hour)); again != err {
		t.Errorf("the next request: %v, want the same error", again)
	}
	if cn.clientTrusted(end.Add(-time.Hour)) == nil {
		t.Error("a failed connection trusted again")
	}

	cn = newConn()
	cn.srv.auth.Store(&clientAuth{tls.NoClientCert, nil})
	if err := cn.clientTrusted(time.Now()); err != nil || cn.certEnd != 0 || cn.clientSubject != "" {
		t.Fatalf("under none: %v, certEnd %v, subject %q; want trusted without a certificate", err, cn.certEnd, cn.clientSubject)
	}
	if err := cn.clientTrusted(end.Add(time.Hour)); err != nil {
		t.Errorf("under none, after the certificate's end: %v, want trusted", err)
	}

	cn = newConn()
	cn.srv.auth.Store(&clientAuth{tls.RequireAndVerifyClientCert, ca.Pool()})
	if err := cn.clientTrusted(time.Now()); err != nil || cn.certEnd != leaf.NotAfter.Unix() {
		t.Errorf("rechecked under require: %v, certEnd %v; want trusted until %v", err, cn.certEnd, leaf.NotAfter.Unix())
	}
}

// TestChainsEnd: a chain stops verifying when its first certificate expires, whichever
// it is; of several chains, the one that lasts longest counts.
func TestChainsEnd(t *testing.T) {
	at := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	cert := func(d time.Duration) *x509.Certificate { return &x509.Certificate{NotAfter: at.Add(d)} }
	for _, tc := range []struct {
		name   string
		chains [][]*x509.Certificate
		want   time.Time
	}{
		{"none", nil, time.Time{}},
		{"the leaf first", [][]*x509.Certificate{{cert(time.Hour), cert(2 * time.Hour), cert(3 * time.Hour)}}, at.Add(time.Hour)},
		{"the intermediate first", [][]*x509.Certificate{{cert(3 * time.Hour), cert(time.Hour), cert(5 * time.Hour)}}, at.Add(time.Hour)},
		{"the root first", [][]*x509.Certificate{{cert(3 * time.Hour), cert(4 * time.Hour), cert(2 * time.Hour)}}, at.Add(2 * time.Hour)},
		{"two chains", [][]*x509.Certificate{
			{cert(3 * time.Hour), cert(time.Hour)},
			{cert(3 * time.Hour), cert(2 * time.Hour)},
		}, at.Add(2 * time.Hour)},
	} {
		if got := chainsEnd(tc.chains); !got.Equal(tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
}
