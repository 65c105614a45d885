package server

import (
	"crypto/tls"
	"log/slog"
	"net"
	"testing"

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
