package certs

import (
	"crypto/tls"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

type recordingObserver struct {
	reloads []error
	expiry  map[string]time.Time
}

func (o *recordingObserver) CertReloaded(_ string, err error) { o.reloads = append(o.reloads, err) }
func (o *recordingObserver) CertExpiry(f string, t time.Time) { o.expiry[f] = t }

// TestPick: exact names before wildcards, earlier pairs before later ones, the first pair
// for no or unknown names unless those are rejected.
func TestPick(t *testing.T) {
	ca := testutil.NewCA(t)
	c1, k1 := ca.Issue(t, "one", testutil.CertOptions{DNSNames: []string{"a.test", "*.w.test"}})
	c2, k2 := ca.Issue(t, "two", testutil.CertOptions{DNSNames: []string{"x.w.test", "a.test", "b.test"}})
	c3, k3 := ca.Issue(t, "cn", testutil.CertOptions{CommonName: "legacy.test"})
	for _, reject := range []bool{false, true} {
		s, err := New([]Pair{{c1, k1}, {c2, k2}, {c3, k3}}, reject, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			sni, want string // want: the cert file, "" for the default
		}{
			{"a.test", c1}, {"b.test", c2}, {"x.w.test", c2}, {"y.w.test", c1}, {"Y.W.TEST.", c1},
			{"legacy.test", c3}, {"w.test", ""}, {"z.y.w.test", ""}, {"", ""},
		} {
			got, err := s.GetCertificate(&tls.ClientHelloInfo{ServerName: tc.sni})
			want := tc.want
			if want == "" {
				if reject {
					if !errors.Is(err, ErrUnknownName) {
						t.Errorf("reject, SNI %q: %v, want ErrUnknownName", tc.sni, err)
					}
					continue
				}
				want = c1
			}
			if err != nil || got != s.pairs[indexOf(s, want)].cert {
				t.Errorf("reject=%v SNI %q: got another certificate (%v), want %s", reject, tc.sni, err, want)
			}
		}
	}
}

func indexOf(s *Store, certFile string) int {
	for i, l := range s.pairs {
		if l.CertFile == certFile {
			return i
		}
	}
	return -1
}

// TestReload: a changed pair is served after Reload; a broken one is refused once (not at
// every poll), keeps the old one serving, and is tried again when it changes.
func TestReload(t *testing.T) {
	ca := testutil.NewCA(t)
	cf, kf := ca.Issue(t, "a", testutil.CertOptions{DNSNames: []string{"a.test"}})
	obs := &recordingObserver{expiry: map[string]time.Time{}}
	s, err := New([]Pair{{cf, kf}}, false, nil, obs)
	if err != nil {
		t.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: "a.test"}
	first, _ := s.GetCertificate(hello)
	if n, err := s.Reload(); n != 0 || err != nil {
		t.Fatalf("unchanged files: replaced %d, %v", n, err)
	}

	later := time.Now().Add(1000 * time.Hour).Truncate(time.Second)
	certPEM, keyPEM := ca.IssuePEM(t, testutil.CertOptions{DNSNames: []string{"a.test"}, NotAfter: later})
	testutil.WriteFile(t, cf, certPEM) // the key still is the old one: a mismatch
	if n, err := s.Reload(); n != 0 || err == nil {
		t.Fatalf("mismatched pair: replaced %d, err %v; want refused", n, err)
	}
	if n, err := s.Reload(); n != 0 || err != nil {
		t.Fatalf("same broken files polled again: replaced %d, err %v; want nothing (reported once)", n, err)
	}
	if got, _ := s.GetCertificate(hello); got != first {
		t.Fatal("a refused reload changed the certificate served")
	}
	testutil.WriteFile(t, kf, keyPEM)
	if n, err := s.Reload(); n != 1 || err != nil {
		t.Fatalf("fixed pair: replaced %d, %v", n, err)
	}
	if got, _ := s.GetCertificate(hello); got == first || !obs.expiry[cf].Equal(later) {
		t.Fatalf("new certificate not served (expiry seen %v, want %v)", obs.expiry[cf], later)
	}
	if len(obs.reloads) != 2 || obs.reloads[0] == nil || obs.reloads[1] != nil {
		t.Errorf("observed reloads %v, want [failure, success]", obs.reloads)
	}

	served, _ := s.GetCertificate(hello)
	os.Remove(cf)
	if _, err := s.Reload(); err == nil {
		t.Error("a removed certificate file: no error")
	}
	if _, err := s.Reload(); err != nil {
		t.Errorf("a removed certificate file polled again: %v; want nothing (reported once)", err)
	}
	if got, _ := s.GetCertificate(hello); got != served {
		t.Error("a removed file changed the certificate served")
	}
	if len(obs.reloads) != 3 || obs.reloads[2] == nil {
		t.Errorf("observed reloads %v, want [failure, success, failure]", obs.reloads)
	}
	certPEM, keyPEM = ca.IssuePEM(t, testutil.CertOptions{DNSNames: []string{"a.test"}})
	testutil.WriteFile(t, kf, keyPEM)
	testutil.WriteFile(t, cf, certPEM) // a new pair in place
	if n, err := s.Reload(); n != 1 || err != nil {
		t.Fatalf("a new pair after the removal: replaced %d, %v", n, err)
	}
}

// TestChainInWrongOrder: a certificate file whose chain puts the issuer before the leaf the
// key belongs to is refused saying so (the first certificate must be the leaf; the key
// matches certificate 2), not as a key that does not match: by New, and by a reload, which
// keeps the old pair serving; the same chain in the right order then loads.
func TestChainInWrongOrder(t *testing.T) {
	ca := testutil.NewCA(t)
	leafPEM, keyPEM := ca.IssuePEM(t, testutil.CertOptions{DNSNames: []string{"a.test"}})
	wrong := append(append([]byte{}, ca.CertPEM...), leafPEM...)
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "chain.crt"), filepath.Join(dir, "chain.key")
	testutil.WriteFile(t, cf, wrong)
	testutil.WriteFile(t, kf, keyPEM)
	want := "certificate file " + cf + ": the first certificate must be the server's (the leaf), but key " + kf + " matches certificate 2 of the chain: put that one first"
	if _, err := New([]Pair{{cf, kf}}, false, nil, nil); err == nil || err.Error() != want {
		t.Errorf("New: %v; want %q", err, want)
	}

	goodCert, goodKey := ca.Issue(t, "a", testutil.CertOptions{DNSNames: []string{"a.test"}})
	s, err := New([]Pair{{goodCert, goodKey}}, false, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	hello := &tls.ClientHelloInfo{ServerName: "a.test"}
	first, _ := s.GetCertificate(hello)
	testutil.WriteFile(t, goodKey, keyPEM)
	testutil.WriteFile(t, goodCert, wrong)
	want = strings.ReplaceAll(strings.ReplaceAll(want, cf, goodCert), kf, goodKey)
	if n, err := s.Reload(); n != 0 || err == nil || err.Error() != want {
		t.Fatalf("reload of a chain in the wrong order: replaced %d, %v; want refused: %q", n, err, want)
	}
	if got, _ := s.GetCertificate(hello); got != first {
		t.Fatal("a refused reload changed the certificate served")
	}
	testutil.WriteFile(t, goodCert, append(append([]byte{}, leafPEM...), ca.CertPEM...))
	if n, err := s.Reload(); n != 1 || err != nil {
		t.Fatalf("the chain in the right order: replaced %d, %v", n, err)
	}
}

// TestNewRefusesBadPairs: New names the file of a pair that does not load or has expired.
func TestNewRefusesBadPairs(t *testing.T) {
	ca := testutil.NewCA(t)
	cf, _ := ca.Issue(t, "a", testutil.CertOptions{DNSNames: []string{"a.test"}})
	_, otherKey := ca.Issue(t, "b", testutil.CertOptions{DNSNames: []string{"b.test"}})
	oldCert, oldKey := ca.Issue(t, "old", testutil.CertOptions{DNSNames: []string{"old.test"}, NotAfter: time.Now().Add(-time.Minute)})
	if _, err := New([]Pair{{cf, otherKey}}, false, nil, nil); err == nil {
		t.Error("mismatched key accepted")
	}
	if _, err := New([]Pair{{oldCert, oldKey}}, false, nil, nil); err == nil {
		t.Error("expired certificate accepted")
	}
	if _, err := New(nil, false, nil, nil); err == nil {
		t.Error("no pairs accepted")
	}
}

// TestReloadReplacementPatterns: the ways tools replace certificate files in place are all
// seen through the configured path: a file renamed over (certbot, cert-manager's files), the
// Kubernetes secret volume's "..data" symlink swapped to a new directory, and a file
// truncated and written in two steps, whose half-written state is refused (the old pair
// keeps serving) and whose completed state loads.
func TestReloadReplacementPatterns(t *testing.T) {
	ca := testutil.NewCA(t)
	hello := &tls.ClientHelloInfo{ServerName: "a.test"}
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, certPEM, keyPEM []byte) (certFile, keyFile string)
		replace func(t *testing.T, certFile, keyFile string, certPEM, keyPEM []byte, mid func())
	}{
		{"rename over", plainFiles, func(t *testing.T, cf, kf string, c, k []byte, mid func()) {
			testutil.WriteFile(t, kf, k)
			mid()
			testutil.WriteFile(t, cf, c)
		}},
		{"symlink swap", secretVolume, func(t *testing.T, cf, _ string, c, k []byte, mid func()) {
			dir := filepath.Dir(cf)
			next := filepath.Join(dir, "..2026_02")
			if err := os.Mkdir(next, 0o700); err != nil {
				t.Fatal(err)
			}
			writeRaw(t, filepath.Join(next, "tls.crt"), c)
			writeRaw(t, filepath.Join(next, "tls.key"), k)
			mid()
			if err := os.Symlink("..2026_02", filepath.Join(dir, "..data_tmp")); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
				t.Fatal(err)
			}
		}},
		{"truncate and write", plainFiles, func(t *testing.T, cf, kf string, c, k []byte, mid func()) {
			writeRaw(t, kf, k)
			writeRaw(t, cf, c[:len(c)/2])
			mid()
			writeRaw(t, cf, c)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c1, k1 := ca.IssuePEM(t, testutil.CertOptions{DNSNames: []string{"a.test"}})
			cf, kf := tc.setup(t, c1, k1)
			s, err := New([]Pair{{cf, kf}}, false, nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			first, _ := s.GetCertificate(hello)
			c2, k2 := ca.IssuePEM(t, testutil.CertOptions{DNSNames: []string{"a.test"}})
			tc.replace(t, cf, kf, c2, k2, func() {
				if n, _ := s.Reload(); n != 0 {
					t.Errorf("halfway: replaced %d", n)
				}
				if got, _ := s.GetCertificate(hello); got != first {
					t.Error("halfway: the certificate served changed")
				}
			})
			if n, err := s.Reload(); n != 1 || err != nil {
				t.Fatalf("replaced: %d, %v", n, err)
			}
			if got, _ := s.GetCertificate(hello); got == first {
				t.Error("the new certificate is not served")
			}
		})
	}
}

// plainFiles writes the pair to two files.
func plainFiles(t *testing.T, certPEM, keyPEM []byte) (string, string) {
	dir := t.TempDir()
	cf, kf := filepath.Join(dir, "a.crt"), filepath.Join(dir, "a.key")
	writeRaw(t, cf, certPEM)
	writeRaw(t, kf, keyPEM)
	return cf, kf
}

// secretVolume lays the pair out as Kubernetes mounts a secret: tls.crt -> ..data/tls.crt,
// ..data -> ..2026_01 (a directory holding the files).
func secretVolume(t *testing.T, certPEM, keyPEM []byte) (string, string) {
	dir := t.TempDir()
	first := filepath.Join(dir, "..2026_01")
	if err := os.Mkdir(first, 0o700); err != nil {
		t.Fatal(err)
	}
	writeRaw(t, filepath.Join(first, "tls.crt"), certPEM)
	writeRaw(t, filepath.Join(first, "tls.key"), keyPEM)
	for _, l := range [][2]string{{"..2026_01", "..data"}, {"..data/tls.crt", "tls.crt"}, {"..data/tls.key", "tls.key"}} {
		if err := os.Symlink(l[0], filepath.Join(dir, l[1])); err != nil {
			t.Fatal(err)
		}
	}
	return filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
}

// writeRaw writes in place (open, truncate, write), not by rename.
func writeRaw(t *testing.T, name string, b []byte) {
	t.Helper()
	if err := os.WriteFile(name, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestClientCAsReload: a replaced bundle is in force after Reload; an unchanged one is not
// loaded again; a broken or missing one keeps the bundle in force and is reported once,
// not at every poll, then loads when it changes again.
func TestClientCAsReload(t *testing.T) {
	ca1, ca2 := testutil.NewCA(t), testutil.NewCA(t)
	file := filepath.Join(t.TempDir(), "clients.crt")
	testutil.WriteFile(t, file, ca1.CertPEM)
	obs := &recordingObserver{}
	c, err := NewClientCAs(file, nil, obs)
	if err != nil {
		t.Fatal(err)
	}
	trusts := func(ca *testutil.CA) bool { return c.Pool().Equal(ca.Pool()) }
	if ok, err := c.Reload(); ok || err != nil || !trusts(ca1) {
		t.Fatalf("unchanged: reloaded %v, %v; trusts ca1 %v", ok, err, trusts(ca1))
	}
	testutil.WriteFile(t, file, ca2.CertPEM)
	if ok, err := c.Reload(); !ok || err != nil || !trusts(ca2) {
		t.Fatalf("replaced: reloaded %v, %v; trusts ca2 %v", ok, err, trusts(ca2))
	}
	for _, broken := range []func(){
		func() { testutil.WriteFile(t, file, []byte("half a bundle\n")) },
		func() { os.Remove(file) },
	} {
		broken()
		before := len(obs.reloads)
		for range 2 {
			c.Reload()
		}
		if n := len(obs.reloads) - before; n != 1 || obs.reloads[len(obs.reloads)-1] == nil || !trusts(ca2) {
			t.Fatalf("broken bundle: %d reports (%v), trusts ca2 %v; want 1 failure and ca2 kept", n, obs.reloads, trusts(ca2))
		}
	}
	testutil.WriteFile(t, file, ca1.CertPEM)
	if ok, err := c.Reload(); !ok || err != nil || !trusts(ca1) {
		t.Fatalf("fixed: reloaded %v, %v; trusts ca1 %v", ok, err, trusts(ca1))
	}
	if _, err := NewClientCAs(filepath.Join(t.TempDir(), "none.crt"), nil, nil); err == nil {
		t.Error("NewClientCAs of a missing file: no error")
	}
}
