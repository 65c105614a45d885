package config

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"
)

// ListenerTLS terminates TLS on a listener (HTTPS).
type ListenerTLS struct {
	// Certificates are the certificate chains and keys served, chosen per handshake by the
	// client's server name (SNI) among each certificate's DNS names (wildcards included); the
	// first one serves clients without SNI or with a name no certificate covers (see
	// UnknownSNI). At least one.
	Certificates []CertificateFiles `yaml:"certificates"`
	// UnknownSNI is what a handshake without SNI, or for a name no certificate covers, gets:
	// "default" (the first certificate; the default) or "reject" (the handshake fails).
	UnknownSNI string `yaml:"unknown_sni"`
	// MinVersion is the lowest TLS version accepted: "1.2" (the default) or "1.3".
	MinVersion string `yaml:"min_version"`
	// ClientAuth asks clients for a certificate (mutual TLS): "none" (the default),
	// "optional" (verified when given) or "require".
	ClientAuth string `yaml:"client_auth"`
	// ClientCAFile is a PEM bundle of the CAs that client certificates must chain to.
	// Required unless client_auth is none. Watched like the certificates: a replaced file
	// verifies from the next handshake on, and open connections' certificates are checked
	// again at their next request (as after a reload that changes client_auth).
	ClientCAFile string `yaml:"client_ca_file"`
	// HandshakeTimeout bounds the TLS handshake of a new connection. Default 10s; 0 is
	// invalid.
	HandshakeTimeout Duration `yaml:"handshake_timeout"`
	// SessionTickets allows resumption by session tickets (keys generated in memory,
	// rotated daily and kept across config reloads). Default true.
	SessionTickets *bool `yaml:"session_tickets"`
	// ACME obtains and renews certificates for its domains automatically (see docs/tls.md).
	// It can stand alone or beside Certificates, which then serve the other names.
	ACME *ACME `yaml:"acme"`
}

// CertificateFiles names a PEM certificate chain (leaf first) and its private key. Relative
// paths are relative to the config file's directory.
type CertificateFiles struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// TLS defaults and thresholds.
const (
	DefaultHandshakeTimeout = Duration(10 * time.Second)
	// WarnCertExpiresWithin is how close to expiry a certificate is warned about.
	WarnCertExpiresWithin = 14 * 24 * time.Hour
)

// Values of ListenerTLS fields.
const (
	UnknownSNIDefault = "default"
	UnknownSNIReject  = "reject"
	ClientAuthNone    = "none"
	ClientAuthOpt     = "optional"
	ClientAuthRequire = "require"
)

// MinTLSVersion maps min_version to its crypto/tls constant.
func (t *ListenerTLS) MinTLSVersion() uint16 {
	if t.MinVersion == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// SessionTicketsOn reports whether session tickets are on (nil means the default, true).
func (t *ListenerTLS) SessionTicketsOn() bool { return t.SessionTickets == nil || *t.SessionTickets }

// defaultTLS fills a listener's TLS block; dir is the config file's directory, against which
// relative file names are resolved.
func defaultTLS(t *ListenerTLS, dir string) {
	setIfZero(&t.UnknownSNI, UnknownSNIDefault)
	setIfZero(&t.MinVersion, "1.2")
	setIfZero(&t.ClientAuth, ClientAuthNone)
	setIfZero(&t.HandshakeTimeout, DefaultHandshakeTimeout)
	for i := range t.Certificates {
		c := &t.Certificates[i]
		c.CertFile, c.KeyFile = resolvePath(dir, c.CertFile), resolvePath(dir, c.KeyFile)
	}
	t.ClientCAFile = resolvePath(dir, t.ClientCAFile)
	if t.ACME != nil {
		defaultACME(t.ACME, dir)
	}
}

func resolvePath(dir, name string) string {
	if name == "" || dir == "" || filepath.IsAbs(name) {
		return name
	}
	return filepath.Join(dir, name)
}

// configDir is the directory relative file names in c are resolved against: the config
// file's, or none for an embedded or in-memory config.
func configDir(c *Config) string {
	if c.File == "" || strings.HasPrefix(c.File, "embedded:") {
		return ""
	}
	return filepath.Dir(c.File)
}

// validateTLS checks a listener's TLS block, including that every file loads: a certificate
// whose key does not match, or that has expired, is an error naming the file.
func validateTLS(p *problems, b string, t *ListenerTLS) {
	b += ".tls"
	if len(t.Certificates) == 0 && t.ACME == nil {
		p.add(b+".certificates", "at least one certificate is required (or acme)")
	}
	if t.ACME != nil {
		validateACME(p, b, t.ACME)
	}
	for i, c := range t.Certificates {
		cb := fmt.Sprintf("%s.certificates[%d]", b, i)
		switch {
		case c.CertFile == "":
			p.add(cb+".cert_file", "required")
		case c.KeyFile == "":
			p.add(cb+".key_file", "required")
		default:
			if _, err := loadPair(c); err != nil {
				p.add(cb, "%v", err)
			}
		}
	}
	switch t.UnknownSNI {
	case UnknownSNIDefault, UnknownSNIReject:
	default:
		p.add(b+".unknown_sni", "unknown value %q: want default or reject", t.UnknownSNI)
	}
	switch t.MinVersion {
	case "1.2", "1.3":
	default:
		p.add(b+".min_version", "unsupported %q: want \"1.2\" or \"1.3\" (older versions are broken)", t.MinVersion)
	}
	switch t.ClientAuth {
	case ClientAuthNone:
	case ClientAuthOpt, ClientAuthRequire:
		if t.ClientCAFile == "" {
			p.add(b+".client_ca_file", "required when client_auth is %s: the CAs that client certificates must chain to", t.ClientAuth)
		} else if err := checkCAFile(t.ClientCAFile); err != nil {
			p.add(b+".client_ca_file", "%v", err)
		}
	default:
		p.add(b+".client_auth", "unknown value %q: want none, optional or require", t.ClientAuth)
	}
	if t.HandshakeTimeout <= 0 {
		p.add(b+".handshake_timeout", "must be positive")
	}
}

// loadPair loads a certificate and key and checks that the key matches and the certificate
// has not expired; it returns the leaf.
func loadPair(c CertificateFiles) (*x509.Certificate, error) {
	pair, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
	if err != nil {
		if oerr := ChainOrderError(c.CertFile, c.KeyFile); oerr != nil {
			return nil, oerr
		}
		return nil, fmt.Errorf("certificate %s with key %s: %w", c.CertFile, c.KeyFile, err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", c.CertFile, err)
	}
	if time.Now().After(leaf.NotAfter) {
		return nil, fmt.Errorf("certificate %s expired on %s", c.CertFile, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return leaf, nil
}

// ChainOrderError explains a certificate and key that failed to load because the chain in
// certFile does not start with the certificate the key belongs to (the intermediate first, a
// slip when concatenating), which crypto/tls reports as a key that does not match, sending
// the operator to the key when the certificate file is at fault. It returns nil when the key
// matches no later certificate of the chain. Validation and the certificate store
// (internal/certs: start, reload) both use it, so that they say the same.
func ChainOrderError(certFile, keyFile string) error {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil
	}
	n := 0
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			return nil
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		if n++; n == 1 {
			continue // the pair failed: the first does not match
		}
		if _, err := tls.X509KeyPair(pem.EncodeToMemory(b), keyPEM); err == nil {
			return fmt.Errorf("certificate file %s: the first certificate must be the server's (the leaf), but key %s matches certificate %d of the chain: put that one first", certFile, keyFile, n)
		}
	}
}

func checkCAFile(name string) error {
	b, err := os.ReadFile(name)
	if err != nil {
		return err
	}
	if blk, _ := pem.Decode(b); blk == nil || blk.Type != "CERTIFICATE" {
		return fmt.Errorf("%s: no PEM certificate found", name)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(b) {
		return fmt.Errorf("%s: no valid certificate found", name)
	}
	return nil
}

// warnTLS warns about certificates that expire soon, and about client CAs that nothing
// uses: with client_auth none no client certificate is asked for, so routes that match
// client_cert_subject never match (a config that meant mutual TLS and forgot client_auth).
func warnTLS(p *problems, b string, t *ListenerTLS) {
	if t.ClientAuth == ClientAuthNone && t.ClientCAFile != "" {
		p.add(b+".tls.client_ca_file", "unused with client_auth: none (no client certificate is asked for, and routes matching client_cert_subject never match); set client_auth to optional or require, or remove client_ca_file")
	}
	for i, c := range t.Certificates {
		leaf, err := loadPair(c)
		if err != nil {
			continue // an error of Validate's
		}
		if left := time.Until(leaf.NotAfter); left < WarnCertExpiresWithin {
			p.add(fmt.Sprintf("%s.tls.certificates[%d]", b, i), "certificate %s expires in %s (%s): renew it; Sluice reloads the file when it changes",
				c.CertFile, left.Round(time.Hour), leaf.NotAfter.UTC().Format(time.RFC3339))
		}
	}
}

// ACME obtains and renews a listener's certificates from an ACME CA (Let's Encrypt and
// others), proving control of each domain with the TLS-ALPN-01 challenge on this listener.
type ACME struct {
	// Domains are the names to obtain certificates for. A wildcard ("*.example.com") can only
	// be proved with the DNS-01 challenge and needs dns01. Required.
	Domains []string `yaml:"domains"`
	// Email is the ACME account's contact address (expiry warnings), a bare address
	// ("ops@example.com"). Optional.
	Email string `yaml:"email"`
	// CA is the ACME directory URL. Default: Let's Encrypt's production directory.
	CA string `yaml:"ca"`
	// CARoot is a PEM bundle trusted for the CA's own HTTPS endpoint (a private ACME CA);
	// default: the system's roots.
	CARoot string `yaml:"ca_root"`
	// Storage is the directory for certificates, keys, the account and locks. Instances
	// that share it (a network file system) coordinate: one orders a certificate, the others
	// wait for it and load it. Relative to the config file; made when missing. Validation
	// refuses a path that is not a directory; a listener whose storage the gateway cannot
	// write is refused when the config is applied. Default: "acme".
	Storage string `yaml:"storage"`
	// AgreeTOS says that you agree to the CA's terms of service; required to be true.
	AgreeTOS bool `yaml:"agree_tos"`
	// DNS01, when set, proves control of every domain with the DNS-01 challenge instead of
	// TLS-ALPN-01 and HTTP-01, through RFC 2136 dynamic updates to an authoritative DNS
	// server (BIND, Knot, PowerDNS, ...). Needed for wildcards. Default: off.
	DNS01 *DNS01 `yaml:"dns01"`
}

// DNS01 is the DNS server that takes the challenge records (docs/tls.md#dns-01).
type DNS01 struct {
	// Server is host:port of the primary DNS server that accepts RFC 2136 updates for the
	// domains' zone (port 53 usually). Required.
	Server string `yaml:"server"`
	// TSIGKey is the name of the TSIG key that signs the updates, as the server knows it.
	// Default "": updates are not signed (only for a server that allows them by address).
	TSIGKey string `yaml:"tsig_key"`
	// TSIGSecret is the key's secret, base64 as BIND's tsig-keygen prints it. Required with
	// tsig_key. Keep the config file private.
	TSIGSecret string `yaml:"tsig_secret"`
	// TSIGAlgorithm is the key's algorithm: hmac-sha256 (default), hmac-sha384, hmac-sha512,
	// hmac-sha224 or hmac-sha1.
	TSIGAlgorithm string `yaml:"tsig_algorithm"`
	// Resolvers are the host:port DNS servers asked for the zone (SOA) and asked whether a
	// challenge record is visible before the CA is told to look. Default: server.
	Resolvers []string `yaml:"resolvers"`
	// PropagationTimeout bounds the wait for a challenge record to be visible on the
	// resolvers. Default 2m; 0 means the default.
	PropagationTimeout Duration `yaml:"propagation_timeout"`
}

// TSIGAlgorithms are the accepted dns01.tsig_algorithm values.
var TSIGAlgorithms = []string{"hmac-sha256", "hmac-sha384", "hmac-sha512", "hmac-sha224", "hmac-sha1"}

// DefaultDNS01PropagationTimeout is dns01.propagation_timeout's default.
const DefaultDNS01PropagationTimeout = 2 * time.Minute

// DefaultACMECA is Let's Encrypt's production directory.
const DefaultACMECA = "https://acme-v02.api.letsencrypt.org/directory"

func defaultACME(a *ACME, dir string) {
	setIfZero(&a.CA, DefaultACMECA)
	setIfZero(&a.Storage, "acme")
	a.Storage = resolvePath(dir, a.Storage)
	a.CARoot = resolvePath(dir, a.CARoot)
	for i, d := range a.Domains {
		a.Domains[i] = strings.ToLower(strings.TrimSuffix(d, "."))
	}
	if d := a.DNS01; d != nil {
		setIfZero(&d.TSIGAlgorithm, "hmac-sha256")
		if len(d.Resolvers) == 0 && d.Server != "" {
			d.Resolvers = []string{d.Server}
		}
		if d.PropagationTimeout == 0 {
			d.PropagationTimeout = Duration(DefaultDNS01PropagationTimeout)
		}
	}
}

func validateACME(p *problems, b string, a *ACME) {
	b += ".acme"
	if len(a.Domains) == 0 {
		p.add(b+".domains", "at least one domain is required")
	}
	for i, d := range a.Domains {
		switch {
		case strings.HasPrefix(d, "*.") && a.DNS01 == nil:
			p.add(fmt.Sprintf("%s.domains[%d]", b, i), "wildcard %q can only be proved with the DNS-01 challenge: add acme.dns01, or list the names", d)
		case strings.HasPrefix(d, "*.") && checkRouteHost(d[2:]) == nil && strings.Contains(d[2:], "."):
		case checkRouteHost(d) != nil || !strings.Contains(d, ".") && d != "localhost":
			p.add(fmt.Sprintf("%s.domains[%d]", b, i), "%q is not a DNS name", d)
		}
	}
	if u, err := url.Parse(a.CA); err != nil || u.Scheme != "https" || u.Host == "" {
		p.add(b+".ca", "must be an https:// ACME directory URL, got %q", a.CA)
	}
	if a.Email != "" {
		// The account's contact: a CA refuses an address it cannot parse, failing every order.
		if addr, err := mail.ParseAddress(a.Email); err != nil || addr.Address != a.Email || addr.Name != "" {
			p.add(b+".email", "must be a bare email address (ops@example.com), got %q", a.Email)
		}
	}
	if err := checkStorageDir(a.Storage); err != nil {
		p.add(b+".storage", "%v", err)
	}
	if a.CARoot != "" {
		if err := checkCAFile(a.CARoot); err != nil {
			p.add(b+".ca_root", "%v", err)
		}
	}
	if !a.AgreeTOS {
		p.add(b+".agree_tos", "must be true: ordering certificates means agreeing to the CA's terms of service (%s for Let's Encrypt)", "https://letsencrypt.org/repository/")
	}
	if d := a.DNS01; d != nil {
		validateDNS01(p, b+".dns01", d)
	}
}

// checkStorageDir reports an ACME storage path that cannot be a directory: it, or the
// nearest of its parents that exists, is something else. Whether it can be written is
// checked when the gateway builds the listener (the gateway may run as another user than
// validate).
func checkStorageDir(dir string) error {
	for p := dir; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		switch {
		case err == nil && !fi.IsDir():
			return fmt.Errorf("%s is not a directory", p)
		case err == nil, !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR):
			return nil // a directory, or not for validate to tell (permissions)
		case filepath.Dir(p) == p:
			return nil
		}
	}
}

func validateDNS01(p *problems, b string, d *DNS01) {
	if d.Server == "" {
		p.add(b+".server", "required: host:port of the DNS server that accepts the updates")
	} else if _, _, err := net.SplitHostPort(d.Server); err != nil {
		p.add(b+".server", "must be host:port, got %q", d.Server)
	}
	for i, r := range d.Resolvers {
		if _, _, err := net.SplitHostPort(r); err != nil {
			p.add(fmt.Sprintf("%s.resolvers[%d]", b, i), "must be host:port, got %q", r)
		}
	}
	switch {
	case d.TSIGKey != "" && d.TSIGSecret == "":
		p.add(b+".tsig_secret", "required with tsig_key")
	case d.TSIGKey == "" && d.TSIGSecret != "":
		p.add(b+".tsig_key", "required with tsig_secret: the key's name")
	case d.TSIGSecret != "":
		if _, err := base64.StdEncoding.DecodeString(d.TSIGSecret); err != nil {
			p.add(b+".tsig_secret", "must be base64 (as tsig-keygen prints it): %v", err)
		}
	}
	if !slices.Contains(TSIGAlgorithms, d.TSIGAlgorithm) {
		p.add(b+".tsig_algorithm", "must be one of %s, got %q", strings.Join(TSIGAlgorithms, ", "), d.TSIGAlgorithm)
	}
	if d.PropagationTimeout < 0 {
		p.add(b+".propagation_timeout", "must not be negative")
	}
}
