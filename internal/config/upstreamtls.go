package config

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"
)

// UpstreamTLS makes the connections to an upstream's targets TLS (HTTPS to the backends).
// docs/tls.md#upstream-tls explains each field.
type UpstreamTLS struct {
	// Enabled turns TLS on. Default true when the block is written (or a target address
	// starts with https://); write false to keep the settings with TLS off.
	Enabled *bool `yaml:"enabled"`
	// ServerName is sent as SNI and is the name the targets' certificates are verified
	// against. Default: the target's host name when the target is given by name (each
	// address it resolves to is verified against that name); for a target given by IP
	// address, no SNI and the certificate must carry that IP address. Required with an SRV
	// target unless InsecureSkipVerify.
	ServerName string `yaml:"server_name"`
	// CAFile is a PEM bundle of the CAs that target certificates must chain to. Default "":
	// the system's roots.
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are the client certificate chain and key presented to targets
	// that ask for one (mutual TLS). Both or neither. Read when the config is loaded, then
	// watched: a replaced pair is used by new connections without a reload.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// InsecureSkipVerify accepts any certificate: no chain, expiry or name check. Default
	// false; true is warned about (anyone on the path can impersonate the backend).
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
	// MinVersion is the lowest TLS version used: "1.2" (the default) or "1.3".
	MinVersion string `yaml:"min_version"`
	// SessionResumption resumes earlier sessions (a cheaper handshake on new connections).
	// Default true.
	SessionResumption *bool `yaml:"session_resumption"`
}

// Target address schemes: a target written as "https://host:port" turns TLS on for its
// upstream; "http://host:port" says plain TCP. Load strips the scheme into Target.Scheme.
const (
	SchemeHTTP  = "http"
	SchemeHTTPS = "https"
)

// TLSOn reports whether u's connections are TLS.
func (u *Upstream) TLSOn() bool { return u.TLS != nil && (u.TLS.Enabled == nil || *u.TLS.Enabled) }

// MinTLSVersion maps min_version to its crypto/tls constant.
func (t *UpstreamTLS) MinTLSVersion() uint16 {
	if t.MinVersion == "1.3" {
		return tls.VersionTLS13
	}
	return tls.VersionTLS12
}

// ResumptionOn reports whether session resumption is on (nil means the default, true).
func (t *UpstreamTLS) ResumptionOn() bool {
	return t.SessionResumption == nil || *t.SessionResumption
}

// splitScheme moves an "http://" or "https://" prefix of t.Address (in any case, as URL
// schemes are: RFC 3986 section 3.1) into t.Scheme and gives an address without a port the
// scheme's default port (80 or 443).
func splitScheme(t *Target) {
	for _, s := range []string{SchemeHTTPS, SchemeHTTP} {
		prefix := s + "://"
		if len(t.Address) < len(prefix) || !strings.EqualFold(t.Address[:len(prefix)], prefix) {
			continue
		}
		rest := t.Address[len(prefix):]
		t.Scheme = s
		port := "443"
		if s == SchemeHTTP {
			port = "80"
		}
		if rest != "" && !strings.ContainsAny(rest, "/?#") {
			if _, _, err := net.SplitHostPort(rest); err != nil {
				rest = net.JoinHostPort(strings.Trim(rest, "[]"), port)
			}
		}
		t.Address = rest
		return
	}
}

// defaultUpstreamTLS strips target schemes, creates the tls block an https:// target asks
// for, and fills the block's defaults; dir resolves relative file names.
func defaultUpstreamTLS(u *Upstream, dir string) {
	for j := range u.Targets {
		splitScheme(&u.Targets[j])
	}
	if u.TLS == nil && slices.ContainsFunc(u.Targets, func(t Target) bool { return t.Scheme == SchemeHTTPS }) {
		u.TLS = &UpstreamTLS{}
	}
	t := u.TLS
	if t == nil {
		return
	}
	setIfNil(&t.Enabled, true)
	setIfZero(&t.MinVersion, "1.2")
	setIfNil(&t.SessionResumption, true)
	t.CAFile, t.CertFile, t.KeyFile = resolvePath(dir, t.CAFile), resolvePath(dir, t.CertFile), resolvePath(dir, t.KeyFile)
}

// validateUpstreamTLS checks the target schemes of upstream u (at path b) against each other
// and its tls block, and the block itself, including that its files load.
func validateUpstreamTLS(p *problems, b string, u Upstream) {
	first := -1 // the first target written with a scheme
	for j, t := range u.Targets {
		tb := fmt.Sprintf("%s.targets[%d].address", b, j)
		if t.Address == "" {
			continue
		}
		switch {
		case first < 0 && t.Scheme != "":
			first = j
		case first >= 0 && t.Scheme != u.Targets[first].Scheme:
			p.add(tb, "%s, but targets[%d] is %s: all targets of an upstream use TLS or none", schemeName(t.Scheme), first, schemeName(u.Targets[first].Scheme))
		}
	}
	if first >= 0 {
		switch s := u.Targets[first].Scheme; {
		case s == SchemeHTTPS && !u.TLSOn():
			p.add(b+".tls.enabled", "false, but targets[%d] is https://", first)
		case s == SchemeHTTP && u.TLSOn():
			p.add(fmt.Sprintf("%s.targets[%d].address", b, first), "http://, but tls is enabled: write https:// or no scheme")
		}
	}
	if u.TLS == nil {
		return
	}
	t, tb := u.TLS, b+".tls"
	if n := t.ServerName; n != "" && net.ParseIP(n) == nil && !isDNSName(strings.TrimSuffix(n, "."), true) {
		p.add(tb+".server_name", "invalid server name %q: want a host name such as \"api.internal\" (no port) or an IP address", n)
	}
	switch t.MinVersion {
	case "1.2", "1.3":
	default:
		p.add(tb+".min_version", "unsupported %q: want \"1.2\" or \"1.3\" (older versions are broken)", t.MinVersion)
	}
	if t.CAFile != "" {
		if t.InsecureSkipVerify {
			p.add(tb+".ca_file", "unused with insecure_skip_verify: true (nothing is verified); remove one of them")
		} else if err := checkCAFile(t.CAFile); err != nil {
			p.add(tb+".ca_file", "%v", err)
		}
	}
	switch {
	case t.CertFile == "" && t.KeyFile != "":
		p.add(tb+".key_file", "needs cert_file too: the client certificate chain")
	case t.CertFile != "" && t.KeyFile == "":
		p.add(tb+".cert_file", "needs key_file too: the client certificate's private key")
	case t.CertFile != "":
		if _, err := loadPair(CertificateFiles{CertFile: t.CertFile, KeyFile: t.KeyFile}); err != nil {
			p.add(tb+".cert_file", "%v", err)
		}
	}
	if !u.TLSOn() || t.ServerName != "" || t.InsecureSkipVerify {
		return
	}
	for j, tg := range u.Targets {
		if tg.SRV != "" {
			p.add(fmt.Sprintf("%s.targets[%d].srv", b, j), "an SRV target over TLS needs tls.server_name: the name its certificates are verified against and sent as SNI")
		}
	}
}

func schemeName(s string) string {
	if s == "" {
		return "no scheme"
	}
	return s + "://"
}

// warnUpstreamTLS warns about verification turned off and about a client certificate that
// expires soon or is not meant for clients.
func warnUpstreamTLS(p *problems, b string, u Upstream) {
	t := u.TLS
	if t == nil || !u.TLSOn() {
		return
	}
	b += ".tls"
	if t.InsecureSkipVerify {
		p.add(b+".insecure_skip_verify", "target certificates are not verified: anyone on the network path can impersonate the backend and read the traffic; set ca_file to the backend's CA instead")
	}
	if t.CertFile == "" || t.KeyFile == "" {
		return
	}
	leaf, err := loadPair(CertificateFiles{CertFile: t.CertFile, KeyFile: t.KeyFile})
	if err != nil {
		return // an error of Validate's
	}
	if left := time.Until(leaf.NotAfter); left < WarnCertExpiresWithin {
		p.add(b+".cert_file", "client certificate %s expires in %s (%s): renew it and reload the config",
			t.CertFile, left.Round(time.Hour), leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if len(leaf.ExtKeyUsage) > 0 && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageClientAuth) && !slices.Contains(leaf.ExtKeyUsage, x509.ExtKeyUsageAny) {
		p.add(b+".cert_file", "certificate %s is not for clients (its extended key usage lacks clientAuth): backends that verify client certificates will refuse it", t.CertFile)
	}
}
