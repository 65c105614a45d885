package gateway

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net"
	"os"

	"sluice/internal/config"
)

// upstreamTLS is the TLS client side of one upstream in one config version: the settings
// its pools share, and id, which changes when they do. A pool's Identity holds id and the
// pool's server name, so a reload keeps a pool (warm connections, session cache, learned
// idle timeout) only when neither changed, file contents included: a replaced CA bundle or
// client certificate takes effect on the next reload, in new pools.
type upstreamTLS struct {
	base  *tls.Config
	id    string
	fixed string // tls.server_name; "" derives it per target
}

// buildUpstreamTLS reads uc's tls block and the files it names; nil when TLS is off. Each
// file is read once, so what id hashes is what the config holds.
func buildUpstreamTLS(uc config.Upstream) (*upstreamTLS, error) {
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
	certPEM, err := read("cert_file", t.CertFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read("key_file", t.KeyFile)
	if err != nil {
		return nil, err
	}
	if certPEM != nil {
		pair, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("tls.cert_file: certificate %s with key %s: %w", t.CertFile, t.KeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return &upstreamTLS{base: cfg, id: hex.EncodeToString(h.Sum(nil)), fixed: t.ServerName}, nil
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
	u, err := buildUpstreamTLS(uc)
	if err != nil || u == nil {
		return nil, err
	}
	c := u.base.Clone()
	c.ServerName = u.serverName(address)
	return c, nil
}
