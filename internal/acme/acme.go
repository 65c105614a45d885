// Package acme obtains and renews a listener's certificates from an ACME CA with certmagic,
// proving control of each domain with the TLS-ALPN-01 challenge on the listener itself (no
// other port needs to be open). Certificates, keys, the account and locks live in a storage
// directory; instances sharing it coordinate through certmagic's storage locks, so that one
// of them orders a certificate and the others load it.
package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
)

// ALPNProto is the ALPN protocol of TLS-ALPN-01 validation connections (RFC 8737); a
// listener that solves the challenge must offer it.
const ALPNProto = acmez.ACMETLS1Protocol

// Options configure a Manager.
type Options struct {
	Domains  []string
	Email    string
	CA       string         // directory URL
	CARoots  *x509.CertPool // trusted for the CA's HTTPS; nil: the system's
	Storage  string         // directory
	Listener string         // host:port of the listener solving TLS-ALPN-01
	// HTTPListener is host:port of a plain HTTP listener that answers HTTP-01 challenges
	// (HandleHTTP); "" leaves HTTP-01 off.
	HTTPListener string
	// DNS01, when set, proves every domain with the DNS-01 challenge (and only it) through
	// RFC 2136 updates: wildcard domains need it.
	DNS01 *DNS01
}

// Observer is told of certificate events (obtained, renewed, failed) for metrics.
type Observer interface {
	ACMEEvent(event, domain string)
}

// Same reports whether o and p manage the same certificates the same way, so that a
// Manager made with o can go on under p (a config reload that left the acme block alone).
func (o Options) Same(p Options) bool {
	if (o.CARoots == nil) != (p.CARoots == nil) || o.CARoots != nil && !o.CARoots.Equal(p.CARoots) {
		return false
	}
	o.CARoots, p.CARoots = nil, nil
	return reflect.DeepEqual(o, p)
}

// Manager keeps the certificates of one listener's ACME domains.
type Manager struct {
	opts    Options
	domains []string
	cache   *certmagic.Cache
	cfg     *certmagic.Config
	issuer  *certmagic.ACMEIssuer
	log     *slog.Logger
	cancel  context.CancelFunc

	closeOnce sync.Once
}

// New returns a Manager serving the certificates of its domains already in storage; Start
// begins managing them (ordering the missing ones, renewing).
func New(o Options, log *slog.Logger, obs Observer) (*Manager, error) {
	if len(o.Domains) == 0 {
		return nil, errors.New("acme: no domains")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Manager{opts: o, domains: o.Domains, log: log.With("component", "acme")}
	if err := checkStorage(o.Storage); err != nil {
		return nil, fmt.Errorf("acme.storage: %w", err)
	}
	zl := certmagicLogger(m.log)
	var cfg *certmagic.Config
	m.cache = certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert: func(certmagic.Certificate) (*certmagic.Config, error) { return cfg, nil },
		Logger:           zl,
	})
	cfg = certmagic.New(m.cache, certmagic.Config{
		Storage: &certmagic.FileStorage{Path: o.Storage},
		Logger:  zl,
		OnEvent: func(_ context.Context, event string, data map[string]any) error {
			domain, _ := data["identifier"].(string)
			switch event {
			case "cert_obtained", "cert_failed", "cert_ocsp_revoked":
				args := []any{"domain", domain, "renewal", data["renewal"], "issuer", data["issuer"]}
				if err, ok := data["error"].(error); ok {
					args = append(args, "err", err) // a refused DNS update says so here
				}
				lvl := slog.LevelInfo
				if event != "cert_obtained" {
					lvl = slog.LevelWarn
				}
				m.log.Log(context.Background(), lvl, "acme "+strings.ReplaceAll(event, "_", " "), args...)
				if obs != nil {
					obs.ACMEEvent(event, domain)
				}
			}
			return nil
		},
	})
	// The challenge is answered by the listener itself: certmagic finds the address in use
	// and leaves the validation handshakes to GetCertificate.
	host, alt, err := splitPort(o.Listener)
	if err != nil {
		return nil, err
	}
	tmpl := certmagic.ACMEIssuer{
		CA: o.CA, Email: o.Email, Agreed: true, TrustedRoots: o.CARoots,
		DisableHTTPChallenge: true, AltTLSALPNPort: alt, ListenHost: host,
		Logger: zl,
	}
	if o.HTTPListener != "" {
		// The same for HTTP-01: the plain listener is in use, so certmagic leaves the
		// challenge requests to HandleHTTP. Both must be on the same host for certmagic's
		// one ListenHost; the HTTP listener's port is what counts for it.
		_, hp, err := splitPort(o.HTTPListener)
		if err != nil {
			return nil, err
		}
		tmpl.DisableHTTPChallenge, tmpl.AltHTTPPort = false, hp
	}
	if d := o.DNS01; d != nil {
		// certmagic uses the DNS challenge alone when a DNS-01 solver is set.
		tmpl.DNS01Solver = &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
			DNSProvider: &rfc2136{d: *d}, Resolvers: d.Resolvers, PropagationTimeout: d.PropagationTimeout,
			Logger: zl,
		}}
	}
	m.issuer = certmagic.NewACMEIssuer(cfg, tmpl)
	cfg.Issuers = []certmagic.Issuer{m.issuer}
	m.cfg = cfg
	m.loadStored()
	return m, nil
}

// loadStoredTimeout bounds loadStored (reading storage, and stapling OCSP when the
// certificate names a responder).
const loadStoredTimeout = 10 * time.Second

// loadStored puts the certificates already in storage in the Manager's cache, so that a
// listener serves them from its first handshake. Start would load them too, but in the
// background: a config reload that changes the acme block builds a new Manager and puts it
// in service at once, and until then handshakes for its domains failed (no certificate in
// the new, empty cache). A missing certificate is left to Start to order; the renewal of a
// loaded one to the cache's maintenance (its first check comes after
// certmagic.DefaultRenewCheckInterval, 10 minutes).
func (m *Manager) loadStored() {
	ctx, cancel := context.WithTimeout(context.Background(), loadStoredTimeout)
	defer cancel()
	for _, d := range m.domains {
		if _, err := m.cfg.CacheManagedCertificate(ctx, d); err != nil && !errors.Is(err, fs.ErrNotExist) {
			m.log.Warn("acme certificate in storage not loaded; Start tries again", "domain", d, "err", err)
		}
	}
}

// checkStorage makes the storage directory and writes, reads and removes a file in it, as
// certmagic does before each order. certmagic's check fails an order without the
// cert_failed event and without a retry, so a storage it cannot use left the names without
// certificates for good; the config that names it is refused instead.
func checkStorage(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".sluice-check-*")
	if err != nil {
		return err
	}
	const probe = "sluice storage check"
	_, err = f.WriteString(probe)
	err = errors.Join(err, f.Close())
	if err == nil {
		var b []byte
		if b, err = os.ReadFile(f.Name()); err == nil && string(b) != probe {
			err = fmt.Errorf("%s: read back %q, wrote %q", f.Name(), b, probe)
		}
	}
	return errors.Join(err, os.Remove(f.Name()))
}

func splitPort(addr string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("acme: listener address %q: %w", addr, err)
	}
	if port, err = strconv.Atoi(p); err != nil {
		return "", 0, fmt.Errorf("acme: listener port %q: %w", p, err)
	}
	return host, port, nil
}

// HTTPChallengePrefix is the path prefix of HTTP-01 validation requests.
const HTTPChallengePrefix = "/.well-known/acme-challenge/"

// HandleHTTP answers an HTTP-01 validation request (GET HTTPChallengePrefix+token for a
// managed name): ok is false when it is not one, and body is the key authorization to send
// with 200 and Content-Type text/plain.
func (m *Manager) HandleHTTP(method, host, path string) (body []byte, ok bool) {
	if method != http.MethodGet || !strings.HasPrefix(path, HTTPChallengePrefix) {
		return nil, false
	}
	r := &http.Request{Method: method, Host: host, URL: &url.URL{Path: path}, Header: http.Header{}}
	rec := &recorder{header: http.Header{}}
	if !m.issuer.HandleHTTPChallenge(rec, r.WithContext(context.Background())) {
		return nil, false
	}
	return rec.body, rec.status == 0 || rec.status == http.StatusOK
}

// recorder is the http.ResponseWriter HandleHTTP gives certmagic.
type recorder struct {
	header http.Header
	status int
	body   []byte
}

func (r *recorder) Header() http.Header         { return r.header }
func (r *recorder) WriteHeader(status int)      { r.status = status }
func (r *recorder) Write(b []byte) (int, error) { r.body = append(r.body, b...); return len(b), nil }

// Options are the Options m was made with.
func (m *Manager) Options() Options { return m.opts }

// Start manages the domains in the background: certificates already in storage are
// loaded, missing ones ordered, all renewed before they expire.
func (m *Manager) Start() error {
	ctx, cancel := context.WithCancel(context.Background())
	m.cancel = cancel
	if err := m.cfg.ManageAsync(ctx, m.domains); err != nil {
		return err
	}
	// ManageAsync renews a certificate it loads from storage when it is due, but leaves
	// alone one already in the cache (loadStored's): without this check an expired one
	// would be served until the cache's first maintenance, 10 minutes on.
	go m.cache.RenewManagedCertificates(ctx)
	return nil
}

// Close stops managing (renewals, maintenance). It may be called again (a second
// Gateway.Shutdown): certmagic's Cache.Stop panics when called twice.
func (m *Manager) Close() {
	m.closeOnce.Do(func() {
		if m.cancel != nil {
			m.cancel()
		}
		m.cache.Stop()
	})
}

// Covers reports whether name is one of the managed domains, or one label under a managed
// wildcard.
func (m *Manager) Covers(name string) bool {
	name = strings.ToLower(strings.TrimSuffix(name, "."))
	if slices.Contains(m.domains, name) {
		return true
	}
	_, rest, ok := strings.Cut(name, ".")
	return ok && slices.Contains(m.domains, "*."+rest)
}

// GetCertificate answers TLS-ALPN-01 validation handshakes and serves the managed
// certificates.
func (m *Manager) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	return m.cfg.GetCertificate(hello)
}

// IsChallenge reports whether hello is an ACME validation handshake: it offers acme-tls/1
// and nothing else (RFC 8737 §3; certmagic answers only those with a challenge
// certificate). A client that offers acme-tls/1 among other protocols is an ordinary one:
// it gets the certificate of its name and, by the server's preference, its other protocol.
func IsChallenge(hello *tls.ClientHelloInfo) bool {
	return len(hello.SupportedProtos) == 1 && hello.SupportedProtos[0] == ALPNProto
}
