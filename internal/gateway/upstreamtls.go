package gateway

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"sluice/internal/certs"
	"sluice/internal/config"
	"sluice/internal/connpool"
)

// upstreamTLS is the TLS client side of one upstream in one config version: the settings
// its pools share, and id, which changes when they do. A pool's Identity holds id and the
// pool's server name, so a reload keeps a pool (warm connections, session cache, learned
// idle timeout) only when neither changed, file contents included: a replaced CA bundle
// takes effect on the next reload, in new pools. The client certificate is the exception: its
// files are watched (clientCert), so a renewed pair is presented by the next handshake of the
// same pools, without a reload; only the file names are in id.
type upstreamTLS struct {
	base   *tls.Config
	id     string
	fixed  string      // tls.server_name; "" derives it per target
	client *clientCert // the watched client certificate; nil: none
}

// poolConfig is the TLS config of one pool: base with the server name for the addresses
// name resolved to, and, with a client certificate, a session cache of the pool's own that
// forgets sessions made with a certificate since replaced (a resumed session keeps the
// identity of the handshake that made it).
func (u *upstreamTLS) poolConfig(name string) *tls.Config {
	c := u.base.Clone()
	c.ServerName = u.serverName(name)
	if u.client != nil && !c.SessionTicketsDisabled {
		c.ClientSessionCache = &certSessions{inner: tls.NewLRUClientSessionCache(4), cert: u.client, gens: map[string]uint64{}}
	}
	return c
}

// buildUpstreamTLS reads uc's tls block and the files it names; nil when TLS is off. Each
// file is read once, so what id hashes is what the config holds. log (nil: none) hears of
// client certificate files that changed.
func buildUpstreamTLS(uc config.Upstream, log *slog.Logger) (*upstreamTLS, error) {
	if !uc.TLSOn() {
		return nil, nil
	}
	t := uc.TLS
	h := sha256.New()
	fmt.Fprintf(h, "%q %v %q %v\n", t.ServerName, t.InsecureSkipVerify, t.MinVersion, t.ResumptionOn())
	read := func(field, name string) ([]byte, error) {
		if name == "" {
			return nil, nil
		}
		b, err := os.ReadFile(name)
		if err != nil {
			return nil, fmt.Errorf("tls.%s: %w", field, err)
		}
		fmt.Fprintf(h, "%s %q %d\n", field, name, len(b))
		h.Write(b)
		return b, nil
	}
	cfg := &tls.Config{
		MinVersion:             t.MinTLSVersion(),
		InsecureSkipVerify:     t.InsecureSkipVerify,
		SessionTicketsDisabled: !t.ResumptionOn(),
		NextProtos:             []string{"http/1.1"},
	}
	ca, err := read("ca_file", t.CAFile)
	if err != nil {
		return nil, err
	}
	if ca != nil {
		cfg.RootCAs = x509.NewCertPool()
		if !cfg.RootCAs.AppendCertsFromPEM(ca) {
			return nil, fmt.Errorf("tls.ca_file: %s: no PEM certificate found", t.CAFile)
		}
	}
	var client *clientCert
	if t.CertFile != "" || t.KeyFile != "" {
		fmt.Fprintf(h, "client pair %q %q\n", t.CertFile, t.KeyFile)
		cc, err := newClientCert(t.CertFile, t.KeyFile, log)
		if err != nil {
			return nil, err
		}
		cfg.GetClientCertificate = cc.get
		client = cc
	}
	return &upstreamTLS{base: cfg, id: hex.EncodeToString(h.Sum(nil)), fixed: t.ServerName, client: client}, nil
}

// serverName is the name verified (and sent as SNI) for the addresses name resolved to:
// tls.server_name, else the host of a target given by name, else "" (the pool then verifies
// the address's IP and sends no SNI). An SRV name is not a host name; config requires
// tls.server_name with one unless verification is off.
func (u *upstreamTLS) serverName(name string) string {
	if u.fixed != "" {
		return u.fixed
	}
	host, _, err := net.SplitHostPort(name)
	if err != nil {
		return ""
	}
	return host
}

// UpstreamTLSConfig is the TLS client config the pools of TLS upstream uc use for target
// address (host:port as written in the config): the same trust, client certificate,
// versions and server name. `sluice probe -c` probes TLS targets with it.
func UpstreamTLSConfig(uc config.Upstream, address string) (*tls.Config, error) {
	u, err := buildUpstreamTLS(uc, nil)
	if err != nil || u == nil {
		return nil, err
	}
	return u.poolConfig(address), nil
}

// clientCertCheck is how often, at most, a client certificate's files are checked for
// changes, at the handshake that needs the certificate (as listener certificate files are
// polled).
const clientCertCheck = 2 * time.Second

// clientCert is an upstream's client certificate pair, reloaded when its files change. It
// checks the files at a handshake at most every clientCertCheck, so it needs no goroutine and
// lives exactly as long as the pools whose TLS config holds it. A pair that fails to load
// (a key replaced before its certificate, a mismatch, an expired certificate) keeps the
// previous one in use, logged once per change (certs.Store).
type clientCert struct {
	store   *certs.Store
	checked atomic.Int64  // unix nanoseconds of the last check
	gen     atomic.Uint64 // bumped when the pair is replaced
}

func newClientCert(certFile, keyFile string, log *slog.Logger) (*clientCert, error) {
	if certFile == "" || keyFile == "" {
		return nil, fmt.Errorf("tls: cert_file and key_file go together")
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s, err := certs.New([]certs.Pair{{CertFile: certFile, KeyFile: keyFile}}, false, log.With("tls", "client_certificate"), nil)
	if err != nil {
		return nil, fmt.Errorf("tls.cert_file: %w", err)
	}
	c := &clientCert{store: s}
	c.checked.Store(time.Now().UnixNano())
	return c, nil
}

// refresh reloads the pair when its files changed, at most every clientCertCheck, and
// returns the pair's generation.
func (c *clientCert) refresh() uint64 {
	now := time.Now().UnixNano()
	if last := c.checked.Load(); now-last >= int64(clientCertCheck) && c.checked.CompareAndSwap(last, now) {
		// Failures keep the pair serving; the store logs them.
		if n, _ := c.store.Reload(); n > 0 {
			c.gen.Add(1)
		}
	}
	return c.gen.Load()
}

// get is the pools' tls.Config.GetClientCertificate.
func (c *clientCert) get(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	c.refresh()
	return c.store.GetCertificate(&tls.ClientHelloInfo{})
}

// certSessions is a pool's TLS session cache when it presents a watched client
// certificate: a session made under an older pair is not resumed. Each connection uses a
// view of it (ForConn, connpool.ConnConfig) that knows the pair its handshake presented, and
// a session is tagged with that pair: a TLS 1.3 backend that asks for a client certificate
// sends its ticket after the handshake, and the connection reads it later (at its first
// read, or in the reuse check when it sat idle), possibly after a replacement was noticed.
// Tagged with the pair in force then, such a session was resumed by the next connection,
// and the backend saw the old certificate (TestClientCertSessionTaggedByConnection).
type certSessions struct {
	inner tls.ClientSessionCache
	cert  *clientCert
	mu    sync.Mutex
	gens  map[string]uint64 // generation of the pair each cached session was made with
}

// ForConn returns the view one new connection uses. The pair's files are checked first
// (refresh), so a replaced file is noticed even when every handshake would resume, and the
// handshake presents the generation the view holds (GetClientCertificate's own check, just
// after, is within clientCertCheck of this one).
func (s *certSessions) ForConn() tls.ClientSessionCache {
	return &connSessions{s: s, gen: s.cert.refresh()}
}

// Get and Put serve a config used without ForConn: as a connection made now.
func (s *certSessions) Get(key string) (*tls.ClientSessionState, bool) {
	return s.get(key, s.cert.refresh())
}

func (s *certSessions) Put(key string, cs *tls.ClientSessionState) { s.put(key, cs, s.cert.gen.Load()) }

// get returns the session for key made with the pair of generation gen, when that is still
// the pair in force.
func (s *certSessions) get(key string, gen uint64) (*tls.ClientSessionState, bool) {
	s.mu.Lock()
	g, ok := s.gens[key]
	s.mu.Unlock()
	if !ok || g != gen || gen != s.cert.gen.Load() {
		return nil, false
	}
	return s.inner.Get(key)
}

// put keeps cs, a session made with the pair of generation gen, unless that pair was
// replaced since.
func (s *certSessions) put(key string, cs *tls.ClientSessionState, gen uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case cs == nil:
		delete(s.gens, key)
	case gen != s.cert.gen.Load():
		return // a session of a replaced pair
	default:
		s.gens[key] = gen
	}
	s.inner.Put(key, cs)
}

// connSessions is one connection's view of a certSessions: the generation of the pair its
// handshake presented.
type connSessions struct {
	s   *certSessions
	gen uint64
}

func (c *connSessions) Get(key string) (*tls.ClientSessionState, bool) { return c.s.get(key, c.gen) }
func (c *connSessions) Put(key string, cs *tls.ClientSessionState)     { c.s.put(key, cs, c.gen) }

var _ connpool.ConnSessionCache = (*certSessions)(nil)
