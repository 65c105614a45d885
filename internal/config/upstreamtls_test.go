package config

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestUpstreamTLSDefaults: https:// targets (the scheme in any case, as URL schemes are) turn
// TLS on with its defaults and the scheme's port; relative file names are resolved against
// the config file's directory.
func TestUpstreamTLSDefaults(t *testing.T) {
	dir := t.TempDir()
	ca := testutil.NewCA(t)
	testutil.WriteFile(t, filepath.Join(dir, "ca.pem"), ca.CertPEM)
	file := filepath.Join(dir, "sluice.yaml")
	c, err := Parse(file, []byte(`
listeners: [{address: ":8080"}]
upstreams:
  - id: short
    targets: [{address: "https://api.internal"}, {address: "https://[::1]"}, {address: "HTTPS://10.0.0.1:8443"}]
  - id: block
    targets: [{address: "10.0.0.2:443"}]
    tls: {ca_file: ca.pem, server_name: api.internal}
  - id: plain
    targets: [{address: "http://10.0.0.3"}]
routes: [{id: r, upstream: short}]
`))
	if err != nil {
		t.Fatal(err)
	}
	short, block, plain := c.Upstreams[0], c.Upstreams[1], c.Upstreams[2]
	var addrs []string
	for _, tg := range short.Targets {
		addrs = append(addrs, tg.Scheme+" "+tg.Address)
	}
	if got := strings.Join(addrs, ", "); got != "https api.internal:443, https [::1]:443, https 10.0.0.1:8443" {
		t.Errorf("targets: %s", got)
	}
	if !short.TLSOn() || short.TLS.MinVersion != "1.2" || !short.TLS.ResumptionOn() || short.TLS.ServerName != "" {
		t.Errorf("https:// upstream tls = %+v", short.TLS)
	}
	if !block.TLSOn() || block.TLS.CAFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("tls block = %+v, want on with ca_file resolved", block.TLS)
	}
	if plain.TLSOn() || plain.Targets[0].Address != "10.0.0.3:80" {
		t.Errorf("http:// upstream: tls %+v, address %q", plain.TLS, plain.Targets[0].Address)
	}
}

// TestUpstreamTLSFiles: the client certificate must load, match its key and not have
// expired; one that expires soon, or is not meant for clients, is warned about, as is
// turning verification off.
func TestUpstreamTLSFiles(t *testing.T) {
	ca := testutil.NewCA(t)
	later := time.Now().Add(90 * 24 * time.Hour) // not worth a warning
	crt, key := ca.Issue(t, "client", testutil.CertOptions{CommonName: "sluice", Client: true, NotAfter: later})
	_, otherKey := ca.Issue(t, "other", testutil.CertOptions{CommonName: "other", Client: true})
	expired, expiredKey := ca.Issue(t, "expired", testutil.CertOptions{Client: true, NotAfter: time.Now().Add(-time.Hour)})
	soon, soonKey := ca.Issue(t, "soon", testutil.CertOptions{Client: true, NotAfter: time.Now().Add(48 * time.Hour)})
	server, serverKey := ca.Issue(t, "server", testutil.CertOptions{DNSNames: []string{"a.test"}, NotAfter: later})
	tests := []struct {
		name     string
		tls      UpstreamTLS
		err      string // "" = valid
		warnings []string
	}{
		{name: "valid pair", tls: UpstreamTLS{CertFile: crt, KeyFile: key, CAFile: ca.CAFile(t)}},
		{name: "key of another certificate", tls: UpstreamTLS{CertFile: crt, KeyFile: otherKey},
			err: "tls.cert_file: certificate " + crt + " with key " + otherKey + ": tls: private key does not match public key"},
		{name: "expired", tls: UpstreamTLS{CertFile: expired, KeyFile: expiredKey}, err: "tls.cert_file: certificate " + expired + " expired on"},
		{name: "missing file", tls: UpstreamTLS{CertFile: crt + ".gone", KeyFile: key}, err: "no such file or directory"},
		{name: "expires soon", tls: UpstreamTLS{CertFile: soon, KeyFile: soonKey},
			warnings: []string{"tls.cert_file: client certificate " + soon + " expires in 48h"}},
		{name: "server certificate", tls: UpstreamTLS{CertFile: server, KeyFile: serverKey},
			warnings: []string{"lacks clientAuth"}},
		{name: "insecure", tls: UpstreamTLS{InsecureSkipVerify: true},
			warnings: []string{"tls.insecure_skip_verify: target certificates are not verified"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			c.Upstreams[0].TLS = &tc.tls
			applyDefaults(c)
			err := c.Validate()
			switch {
			case tc.err == "" && err != nil:
				t.Fatalf("Validate: %v", err)
			case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
				t.Fatalf("Validate = %v; want an error containing %q", err, tc.err)
			}
			warns := Warnings(c)
			if len(warns) != len(tc.warnings) {
				t.Errorf("warnings %q, want %d", warns, len(tc.warnings))
			}
			for i, w := range tc.warnings {
				if i < len(warns) && !strings.Contains(warns[i], w) {
					t.Errorf("warning %q, want it to contain %q", warns[i], w)
				}
			}
		})
	}
}
