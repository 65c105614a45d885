// Package certs serves the certificates of a TLS listener: it loads PEM certificate chains
// and keys, picks one per handshake by the client's server name (SNI), and reloads them
// without a restart when their files change on disk (cert-manager and certbot replace files
// in place) or the config is reloaded. A pair that fails to load keeps the previous one
// serving; the failure is logged and counted, never served.
package certs

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/config"
)

// Pair names the files of one certificate chain and its private key.
type Pair struct {
	CertFile string
	KeyFile  string
}

// Observer is told of reloads; nil means none (metrics implement it).
type Observer interface {
	// CertReloaded reports one pair reloaded from changed files: err nil (loaded) or why it
	// was refused (the old one keeps serving).
	CertReloaded(certFile string, err error)
	// CertExpiry reports when the pair of certFile now serving expires.
	CertExpiry(certFile string, notAfter time.Time)
}

// Store holds the certificates of one listener. It is safe for concurrent use:
// GetCertificate runs on every handshake, Reload on the watcher's goroutine.
type Store struct {
	log           *slog.Logger
	obs           Observer
	rejectUnknown bool

	mu    sync.Mutex // serialises Reload
	pairs []*loaded
	idx   atomic.Pointer[index]
}

// loaded is one pair as last loaded, with the file facts that tell a change.
type loaded struct {
	Pair
	cert     *tls.Certificate
	leaf     *x509.Certificate
	certStat fileStamp
	keyStat  fileStamp
	// The stamps of files that failed to load, so that a bad file is reported once, not
	// at every poll, and retried when it changes again.
	badCert, badKey fileStamp
}

// fileStamp identifies a file's content: a hash, since modification times are coarse (a
// file replaced twice within a few milliseconds keeps its time, often its size too).
type fileStamp [sha256.Size]byte

// index finds a certificate by server name.
type index struct {
	exact    map[string]*tls.Certificate // lower-case DNS names
	wildcard map[string]*tls.Certificate // "example.com" for "*.example.com"
	def      *tls.Certificate            // the first pair's, for no or unknown SNI
}

// ErrUnknownName is the handshake error for a server name no certificate covers, when the
// listener rejects those.
var ErrUnknownName = errors.New("no certificate for this server name")

// New loads pairs (at least one) and returns their Store. rejectUnknown makes a handshake
// without SNI, or for a name no certificate covers, fail instead of getting the first
// certificate. The error names the file that failed.
func New(pairs []Pair, rejectUnknown bool, log *slog.Logger, obs Observer) (*Store, error) {
	if len(pairs) == 0 {
		return nil, errors.New("no certificates")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{log: log.With("component", "certs"), obs: obs, rejectUnknown: rejectUnknown}
	for _, p := range pairs {
		l, err := load(p)
		if err != nil {
			return nil, err
		}
		s.pairs = append(s.pairs, l)
		s.noteExpiry(l)
	}
	s.reindex()
	return s, nil
}

// load reads and checks one pair: the key must match the certificate and the certificate
// must not have expired.
func load(p Pair) (*loaded, error) {
	cs, err := stamp(p.CertFile)
	if err != nil {
		return nil, err
	}
	ks, err := stamp(p.KeyFile)
	if err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(p.CertFile, p.KeyFile)
	if err != nil {
		if oerr := config.ChainOrderError(p.CertFile, p.KeyFile); oerr != nil {
			return nil, oerr // an intermediate first: said so, not "private key does not match"
		}
		return nil, fmt.Errorf("%s with key %s: %w", p.CertFile, p.KeyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, fmt.Errorf("%s: %w", p.CertFile, err)
		}
	}
	if now := time.Now(); now.After(leaf.NotAfter) {
		return nil, fmt.Errorf("%s: certificate expired on %s", p.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return &loaded{Pair: p, cert: &cert, leaf: leaf, certStat: cs, keyStat: ks}, nil
}

// stamp reads name and returns its fileStamp. A file that cannot be read has the stamp of
// its error, so that a file missing for a while (a symlink swapped by unlink and link, a
// directory replaced) is reported once, not at every poll.
func stamp(name string) (fileStamp, error) {
	_, st, err := readStamped(name)
	return st, err
}

// readStamped reads name: its content and its fileStamp (that of the error when it cannot be
// read, as stamp says).
func readStamped(name string) ([]byte, fileStamp, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, sha256.Sum256([]byte("unreadable: " + err.Error())), err
	}
	return b, sha256.Sum256(b), nil
}

func (s *Store) noteExpiry(l *loaded) {
	if s.obs != nil {
		s.obs.CertExpiry(l.CertFile, l.leaf.NotAfter)
	}
}

// reindex rebuilds the name index from the pairs; earlier pairs win a name.
func (s *Store) reindex() {
	ix := &index{exact: map[string]*tls.Certificate{}, wildcard: map[string]*tls.Certificate{}, def: s.pairs[0].cert}
	for _, l := range s.pairs {
		for _, n := range Names(l.leaf) {
			n = strings.ToLower(n)
			if rest, ok := strings.CutPrefix(n, "*."); ok {
				if _, dup := ix.wildcard[rest]; !dup {
					ix.wildcard[rest] = l.cert
				}
			} else if _, dup := ix.exact[n]; !dup {
				ix.exact[n] = l.cert
			}
		}
	}
	s.idx.Store(ix)
}

// Names returns the DNS names a certificate serves: its DNS SANs, or its common name when
// it has none (old self-signed certificates).
func Names(leaf *x509.Certificate) []string {
	if len(leaf.DNSNames) > 0 {
		return leaf.DNSNames
	}
	if leaf.Subject.CommonName != "" {
		return []string{leaf.Subject.CommonName}
	}
	return nil
}

// GetCertificate picks the certificate for a handshake (tls.Config.GetCertificate): an
// exact name, then a wildcard one level up, then the first pair's unless unknown names
// are rejected.
func (s *Store) GetCertificate(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
	ix := s.idx.Load()
	if c := ix.lookup(hello.ServerName); c != nil {
		return c, nil
	}
	if s.rejectUnknown {
		return nil, ErrUnknownName
	}
	return ix.def, nil
}

// Rejects reports whether GetCertificate fails hello for its server name (ErrUnknownName):
// the store rejects unknown names and none of its certificates covers this one, or there is
// none. A nil Store rejects nothing. [Options].Unknown takes it.
func (s *Store) Rejects(hello *tls.ClientHelloInfo) bool {
	return s != nil && s.rejectUnknown && s.idx.Load().lookup(hello.ServerName) == nil
}

// lookup finds the certificate for a server name: an exact name, then a wildcard one level
// up; nil for none (or no name).
func (ix *index) lookup(serverName string) *tls.Certificate {
	name := strings.ToLower(strings.TrimSuffix(serverName, "."))
	if name == "" {
		return nil
	}
	if c, ok := ix.exact[name]; ok {
		return c
	}
	if _, rest, ok := strings.Cut(name, "."); ok {
		return ix.wildcard[rest]
	}
	return nil
}

// Reload re-reads the pairs whose certificate or key file changed (content) and reports how many were replaced. A pair that fails to load keeps the one serving
// and is reported in err (every failure, joined).
func (s *Store) Reload() (replaced int, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	for i, l := range s.pairs {
		cs, cerr := stamp(l.CertFile)
		ks, kerr := stamp(l.KeyFile)
		if cerr == nil && kerr == nil && cs == l.certStat && ks == l.keyStat || cs == l.badCert && ks == l.badKey {
			continue // unchanged, or the failure reported already
		}
		next, lerr := load(l.Pair)
		if lerr != nil {
			// Files replaced one at a time (certificate, then key) fail until both are in
			// place: the next change is tried again.
			l.badCert, l.badKey = cs, ks
			errs = append(errs, lerr)
			if s.obs != nil {
				s.obs.CertReloaded(l.CertFile, lerr)
			}
			s.log.Warn("certificate reload refused; the previous one keeps serving", "cert_file", l.CertFile, "err", lerr)
			continue
		}
		s.pairs[i] = next
		replaced++
		if s.obs != nil {
			s.obs.CertReloaded(l.CertFile, nil)
		}
		s.noteExpiry(next)
		s.log.Info("certificate reloaded", "cert_file", l.CertFile, "names", strings.Join(Names(next.leaf), ","),
			"not_after", next.leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if replaced > 0 {
		s.reindex()
	}
	return replaced, errors.Join(errs...)
}

// Watch polls the files every interval and reloads those that changed, until ctx ends.
func (s *Store) Watch(ctx context.Context, interval time.Duration) {
	poll(ctx, interval, func() { s.Reload() })
}

// poll runs f every interval until ctx ends.
func poll(ctx context.Context, interval time.Duration, f func()) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			f()
		}
	}
}

// Options are a TLS listener's settings besides its certificates.
type Options struct {
	// MinVersion is tls.VersionTLS12 or tls.VersionTLS13.
	MinVersion uint16
	// ClientAuth is tls.NoClientCert, tls.VerifyClientCertIfGiven or
	// tls.RequireAndVerifyClientCert; ClientCAs verifies them, with the bundle in force at
	// each handshake (a replaced file applies from the next one).
	ClientAuth tls.ClientAuthType
	ClientCAs  *ClientCAs
	// NextProtos are the ALPN protocols offered, in preference order.
	NextProtos []string
	// NoSessionTickets turns resumption by session tickets off.
	NoSessionTickets bool
	// Unknown, when set, reports a handshake whose server name the listener refuses
	// (Store.Rejects): it fails with the unrecognized_name alert that RFC 6066 §3 asks for
	// (see unknownName), not the internal_error that a GetCertificate error gets.
	Unknown func(*tls.ClientHelloInfo) bool
	// Replaces is the config of the same listener that this one replaces (a config
	// reload), nil for none: its session ticket keys, which crypto/tls makes and rotates
	// daily, carry over, so that clients resume their sessions across a reload. A resumed
	// session's client certificate is still checked against the new ClientAuth and
	// ClientCAs (crypto/tls verifies its chain again).
	Replaces *tls.Config
}

// ServerConfig returns the tls.Config of a listener whose certificates getCert picks
// (Store.GetCertificate, or a composition with ACME's) with o. TLS 1.2 is limited to
// AEAD cipher suites with forward secrecy (TLS 1.3's are all of that kind); the key
// exchanges are Go's defaults (the post-quantum hybrids first, then X25519 and the NIST curves).
func ServerConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error), o Options) *tls.Config {
	min := o.MinVersion
	if min < tls.VersionTLS12 {
		min = tls.VersionTLS12
	}
	c := &tls.Config{}
	if o.Replaces != nil {
		// Clone is the only way to the automatic ticket keys; every field the clone took
		// from o.Replaces (made here too) is set again below.
		c = o.Replaces.Clone()
	}
	c.GetCertificate = getCert
	c.MinVersion = min
	c.CipherSuites = tls12Suites
	c.ClientAuth = o.ClientAuth
	c.ClientCAs = nil
	c.NextProtos = o.NextProtos
	c.SessionTicketsDisabled = o.NoSessionTickets
	c.GetConfigForClient = nil
	unknown, cas := o.Unknown, o.ClientCAs
	if cas != nil {
		c.ClientCAs = cas.Pool()
	}
	if unknown == nil && cas == nil {
		return c
	}
	var withCAs atomic.Pointer[tls.Config] // c with a bundle reloaded since
	c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		if unknown != nil && unknown(hello) {
			return unknownName, nil
		}
		if cas == nil || cas.Pool() == c.ClientCAs {
			return nil, nil // this config
		}
		// The bundle changed on disk: a copy of c verifies with it. crypto/tls takes the
		// session ticket keys from c still (a config from GetConfigForClient without keys
		// of its own uses the original's), so sessions resume across the change, each
		// checked against the new bundle.
		pool, d := cas.Pool(), withCAs.Load()
		if d == nil || d.ClientCAs != pool {
			d = c.Clone()
			d.ClientCAs, d.GetConfigForClient = pool, nil
			withCAs.Store(d)
		}
		return d, nil
	}
	return c
}

// unknownName is the config of a handshake for a server name the listener refuses. It has
// no certificate and no GetCertificate: that is the one case where crypto/tls (as of Go
// 1.26) answers with the unrecognized_name alert (its errNoCertificates, "tls: no
// certificates configured"); any error from GetCertificate gets internal_error.
var unknownName = &tls.Config{MinVersion: tls.VersionTLS12}

// IsUnknownName reports whether err is the failure of a handshake that ServerConfig's
// Options.Unknown refused (or of GetCertificate's ErrUnknownName). crypto/tls returns its
// own unexported error there, told by its text.
func IsUnknownName(err error) bool {
	return errors.Is(err, ErrUnknownName) || err != nil && err.Error() == "tls: no certificates configured"
}

// tls12Suites are the TLS 1.2 suites offered: ECDHE with AES-GCM or ChaCha20-Poly1305.
var tls12Suites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// LoadCAs reads a PEM bundle of CA certificates.
func LoadCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseCAs(file, b)
}
