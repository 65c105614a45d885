package acme

import (
	"crypto/x509"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestOptionsSame: a Manager goes on across a reload only when nothing it was made with
// changed, the CA roots compared by content (a reload reads the file again).
func TestOptionsSame(t *testing.T) {
	ca, other := testutil.NewCA(t), testutil.NewCA(t)
	pool := func(cas ...*testutil.CA) *x509.CertPool {
		p := x509.NewCertPool()
		for _, c := range cas {
			p.AddCert(c.Cert)
		}
		return p
	}
	base := func() Options {
		return Options{Domains: []string{"a.test"}, Email: "ops@a.test", CA: "https://ca/dir", CARoots: pool(ca),
			Storage: "/acme", Listener: "127.0.0.1:443", HTTPListener: "127.0.0.1:80",
			DNS01: &DNS01{Server: "10.0.0.53:53", Resolvers: []string{"10.0.0.53:53"}, PropagationTimeout: time.Minute}}
	}
	for _, tc := range []struct {
		name string
		edit func(*Options)
		same bool
	}{
		{"unchanged, roots read again", func(*Options) {}, true},
		{"domains", func(o *Options) { o.Domains = append(o.Domains, "b.test") }, false},
		{"email", func(o *Options) { o.Email = "x@a.test" }, false},
		{"other roots", func(o *Options) { o.CARoots = pool(other) }, false},
		{"no roots", func(o *Options) { o.CARoots = nil }, false},
		{"HTTP listener", func(o *Options) { o.HTTPListener = "" }, false},
		{"DNS-01 resolvers", func(o *Options) { o.DNS01.Resolvers = []string{"10.0.0.54:53"} }, false},
		{"no DNS-01", func(o *Options) { o.DNS01 = nil }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := base()
			tc.edit(&o)
			if got := base().Same(o); got != tc.same {
				t.Errorf("Same = %v, want %v", got, tc.same)
			}
		})
	}
}
