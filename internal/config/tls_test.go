package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestTLSValidation: every file of a listener's tls block is loaded at validation, and each
// problem names the field, the file and what is wrong.
func TestTLSValidation(t *testing.T) {
	ca := testutil.NewCA(t)
	goodCert, goodKey := ca.Issue(t, "good", testutil.CertOptions{DNSNames: []string{"a.test"}})
	_, otherKey := ca.Issue(t, "other", testutil.CertOptions{DNSNames: []string{"b.test"}})
	expired, expiredKey := ca.Issue(t, "expired", testutil.CertOptions{DNSNames: []string{"old.test"}, NotAfter: time.Now().Add(-time.Hour)})
	soon, soonKey := ca.Issue(t, "soon", testutil.CertOptions{DNSNames: []string{"soon.test"}, NotAfter: time.Now().Add(3 * 24 * time.Hour)})
	// The chain in the wrong order: its issuer first, then the leaf its key belongs to.
	leafPEM, leafKeyPEM := ca.IssuePEM(t, testutil.CertOptions{DNSNames: []string{"c.test"}})
	wrongOrder, wrongOrderKey := filepath.Join(t.TempDir(), "chain.crt"), filepath.Join(t.TempDir(), "chain.key")
	testutil.WriteFile(t, wrongOrder, append(append([]byte{}, ca.CertPEM...), leafPEM...))
	testutil.WriteFile(t, wrongOrderKey, leafKeyPEM)
	garbage := filepath.Join(t.TempDir(), "garbage.pem")
	os.WriteFile(garbage, []byte("-----BEGIN NOTHING-----\n"), 0o600)

	tests := []struct {
		name, tls string
		errs      []string // substrings of the errors, in any order; none: valid
		warn      string   // substring of a warning
	}{
		{name: "good", tls: `{certificates: [{cert_file: GOOD, key_file: GOODKEY}]}`},
		{name: "key of another certificate", tls: `{certificates: [{cert_file: GOOD, key_file: OTHERKEY}]}`,
			errs: []string{"listeners[0].tls.certificates[0]: certificate " + goodCert + " with key " + otherKey + ": tls: private key does not match public key"}},
		{name: "chain with the leaf second", tls: `{certificates: [{cert_file: WRONGORDER, key_file: WOKEY}]}`,
			errs: []string{"listeners[0].tls.certificates[0]: certificate file " + wrongOrder + ": the first certificate must be the server's (the leaf), but key " + wrongOrderKey + " matches certificate 2 of the chain: put that one first"}},
		{name: "expired", tls: `{certificates: [{cert_file: EXPIRED, key_file: EXPIREDKEY}]}`,
			errs: []string{"listeners[0].tls.certificates[0]: certificate " + expired + " expired on"}},
		{name: "missing file", tls: `{certificates: [{cert_file: /nonexistent/x.crt, key_file: GOODKEY}]}`,
			errs: []string{"/nonexistent/x.crt", "no such file"}},
		{name: "no certificates", tls: `{certificates: []}`, errs: []string{"listeners[0].tls.certificates: at least one certificate is required"}},
		{name: "missing key", tls: `{certificates: [{cert_file: GOOD}]}`, errs: []string{"listeners[0].tls.certificates[0].key_file: required"}},
		{name: "bad enums", tls: `{certificates: [{cert_file: GOOD, key_file: GOODKEY}], min_version: "1.1", unknown_sni: drop, client_auth: maybe}`,
			errs: []string{`min_version: unsupported "1.1"`, `unknown_sni: unknown value "drop"`, `client_auth: unknown value "maybe"`}},
		{name: "mTLS without CA", tls: `{certificates: [{cert_file: GOOD, key_file: GOODKEY}], client_auth: require}`,
			errs: []string{"client_ca_file: required when client_auth is require"}},
		{name: "mTLS CA not PEM", tls: `{certificates: [{cert_file: GOOD, key_file: GOODKEY}], client_auth: optional, client_ca_file: GARBAGE}`,
			errs: []string{"client_ca_file: " + garbage + ": no PEM certificate found"}},
		{name: "zero handshake timeout", tls: `{certificates: [{cert_file: GOOD, key_file: GOODKEY}], handshake_timeout: 0s}`,
			errs: []string{"handshake_timeout"}},
		{name: "acme wildcard without dns01", tls: `{acme: {domains: ["*.example.com"], agree_tos: true}}`,
			errs: []string{`listeners[0].tls.acme.domains[0]: wildcard "*.example.com" can only be proved with the DNS-01 challenge`}},
		{name: "acme dns01 wildcard", tls: `{acme: {domains: ["*.example.com", example.com], agree_tos: true, dns01: {server: "10.0.0.53:53", tsig_key: sluice., tsig_secret: c2VjcmV0}}}`},
		{name: "acme dns01 bad", tls: `{acme: {domains: ["*.example.com"], agree_tos: true, dns01: {server: ns1, tsig_key: k, tsig_secret: "not base64!", tsig_algorithm: hmac-md5, resolvers: [ns2]}}}`,
			errs: []string{`acme.dns01.server: must be host:port, got "ns1"`, `acme.dns01.tsig_secret: must be base64`, `acme.dns01.tsig_algorithm: must be one of hmac-sha256`, `acme.dns01.resolvers[0]: must be host:port`}},
		{name: "acme dns01 secret without key", tls: `{acme: {domains: [a.example.com], agree_tos: true, dns01: {tsig_secret: c2VjcmV0}}}`,
			errs: []string{"acme.dns01.server: required", "acme.dns01.tsig_key: required with tsig_secret"}},
		{name: "acme bad email, directory URL, storage", tls: `{acme: {domains: [a.example.com], agree_tos: true, email: "ops at example.com", ca: "https:///dir", storage: GARBAGE/acme}}`,
			errs: []string{`acme.email: must be a bare email address (ops@example.com), got "ops at example.com"`,
				`acme.ca: must be an https:// ACME directory URL, got "https:///dir"`, "acme.storage: " + garbage + " is not a directory"}},
		{name: "acme email with a display name", tls: `{acme: {domains: [a.example.com], agree_tos: true, email: "Ops <ops@example.com>"}}`,
			errs: []string{`acme.email: must be a bare email address`}},
		{name: "acme storage is a file", tls: `{acme: {domains: [a.example.com], agree_tos: true, storage: GARBAGE}}`,
			errs: []string{"acme.storage: " + garbage + " is not a directory"}},
		{name: "acme good, storage to be made", tls: `{acme: {domains: [a.example.com], agree_tos: true, email: ops@example.com, ca: "https://ca.example.com:14000/dir", storage: MISSING/x/y}}`},
		{name: "client CAs with client_auth", tls: `{certificates: [{cert_file: GOOD, key_file: GOODKEY}], client_auth: optional, client_ca_file: GOOD}`},
		{name: "client CAs without client_auth: a warning", tls: `{certificates: [{cert_file: GOOD, key_file: GOODKEY}], client_ca_file: GOOD}`,
			warn: "listeners[0].tls.client_ca_file: unused with client_auth: none"},
		{name: "expiring soon: a warning", tls: `{certificates: [{cert_file: SOON, key_file: SOONKEY}]}`,
			warn: "listeners[0].tls.certificates[0]: certificate " + soon + " expires in 7"},
	}
	r := strings.NewReplacer("GOODKEY", goodKey, "GOOD", goodCert, "OTHERKEY", otherKey, "EXPIREDKEY", expiredKey,
		"EXPIRED", expired, "WRONGORDER", wrongOrder, "WOKEY", wrongOrderKey, "SOONKEY", soonKey, "SOON", soon, "GARBAGE", garbage, "MISSING", t.TempDir())
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			yaml := "listeners:\n  - address: 127.0.0.1:8443\n    tls: " + r.Replace(tc.tls) +
				"\nupstreams: [{id: u, targets: [{address: 127.0.0.1:9}]}]\nroutes: [{id: r, upstream: u}]\n"
			c, err := Parse("tls.yaml", []byte(yaml))
			if len(tc.errs) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				w := strings.Join(Warnings(c), "\n")
				if tc.warn == "" && w != "" || !strings.Contains(w, tc.warn) {
					t.Errorf("warnings %q, want one containing %q", w, tc.warn)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error; want %q", tc.errs)
			}
			for _, want := range tc.errs {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q lacks %q", err, want)
				}
			}
			if !strings.HasPrefix(err.Error(), "tls.yaml:3: ") {
				t.Errorf("error %q does not name the file and the line of the tls block", err)
			}
		})
	}
}

// TestTLSRelativePaths: certificate files are found relative to the config file.
func TestTLSRelativePaths(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t)
	certPEM, keyPEM := ca.IssuePEM(t, testutil.CertOptions{DNSNames: []string{"a.test"}})
	os.Mkdir(filepath.Join(dir, "certs"), 0o700)
	testutil.WriteFile(t, filepath.Join(dir, "certs", "a.crt"), certPEM)
	testutil.WriteFile(t, filepath.Join(dir, "certs", "a.key"), keyPEM)
	file := filepath.Join(dir, "sluice.yaml")
	yaml := "listeners:\n  - address: 127.0.0.1:8443\n    tls: {certificates: [{cert_file: certs/a.crt, key_file: certs/a.key}]}\n" +
		"upstreams: [{id: u, targets: [{address: 127.0.0.1:9}]}]\nroutes: [{id: r, upstream: u}]\n"
	testutil.WriteFile(t, file, []byte(yaml))
	c, err := Load(file)
	if err != nil {
		t.Fatal(err)
	}
	if got := c.Listeners[0].TLS.Certificates[0].CertFile; got != filepath.Join(dir, "certs", "a.crt") {
		t.Errorf("cert_file resolved to %q", got)
	}
}
