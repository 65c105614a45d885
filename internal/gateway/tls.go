package gateway

import (
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"sluice/internal/acme"
	"sluice/internal/certs"
	"sluice/internal/config"
	"sluice/internal/h1"
	"sluice/internal/reason"
	"sluice/internal/server"
)

// certPollInterval is how often certificate files are checked for changes.
const certPollInterval = 2 * time.Second

// edgeTLS is the TLS side of one config's listeners: a certificate store (and an ACME
// manager) and a tls.Config per TLS listener, a client CA bundle per listener under
// client_auth (both by address), and the HTTPS ports of redirecting listeners (by name).
// The stores' and bundles' file watchers and the ACME managers run from watch until close.
// An ACME manager whose settings a reload left alone goes on in the next edgeTLS (its
// cache, renewal schedule and orders in progress with it): close and watch skip the
// managers the other edgeTLS shares.
type edgeTLS struct {
	configs   map[string]*tls.Config
	stores    []*certs.Store
	clientCAs map[string]*certs.ClientCAs
	acme      []*acme.Manager
	redirects map[string]int
	stop      context.CancelFunc
}

// buildEdgeTLS loads the certificates of cfg's TLS listeners. An error (a file that does not
// load) names the listener and the file; the running config keeps serving.
func (g *Gateway) buildEdgeTLS(cfg *config.Config) (*edgeTLS, error) {
	e := &edgeTLS{configs: map[string]*tls.Config{}, clientCAs: map[string]*certs.ClientCAs{}, redirects: map[string]int{}}
	for _, lc := range cfg.Listeners {
		if r := lc.RedirectHTTPS; r != nil {
			e.redirects[lc.Name] = r.Port
		}
		if lc.TLS == nil {
			continue
		}
		tc, err := g.listenerTLS(cfg, lc, e)
		if err != nil {
			e.close(g.edge)
			return nil, fmt.Errorf("listener %q: tls: %w", lc.Name, err)
		}
		e.configs[lc.Address] = tc
	}
	return e, nil
}

// listenerTLS builds one listener's tls.Config, adding its store and ACME manager to e.
func (g *Gateway) listenerTLS(cfg *config.Config, lc config.Listener, e *edgeTLS) (*tls.Config, error) {
	t := lc.TLS
	var store *certs.Store
	if len(t.Certificates) > 0 {
		pairs := make([]certs.Pair, len(t.Certificates))
		for i, c := range t.Certificates {
			pairs[i] = certs.Pair{CertFile: c.CertFile, KeyFile: c.KeyFile}
		}
		var err error
		if store, err = certs.New(pairs, t.UnknownSNI == config.UnknownSNIReject, g.log, g.obs.m); err != nil {
			return nil, err
		}
		e.stores = append(e.stores, store)
	}
	o := certs.Options{MinVersion: t.MinTLSVersion(), NextProtos: []string{"http/1.1"}, NoSessionTickets: !t.SessionTicketsOn()}
	if g.edge != nil {
		o.Replaces = g.edge.configs[lc.Address] // its session ticket keys carry over
	}
	if lc.HasProtocol(config.ProtoH2) {
		o.NextProtos = []string{"h2", "http/1.1"} // h2 first: the server's preference decides
	}
	switch t.ClientAuth {
	case config.ClientAuthOpt:
		o.ClientAuth = tls.VerifyClientCertIfGiven
	case config.ClientAuthRequire:
		o.ClientAuth = tls.RequireAndVerifyClientCert
	}
	if o.ClientAuth != tls.NoClientCert {
		var err error
		if o.ClientCAs, err = certs.NewClientCAs(t.ClientCAFile, g.log, g.obs.m); err != nil {
			return nil, fmt.Errorf("client_ca_file: %w", err)
		}
		e.clientCAs[lc.Address] = o.ClientCAs
	}
	getCert := store.GetCertificate
	if store != nil && t.UnknownSNI == config.UnknownSNIReject {
		// Only then: the hook makes crypto/tls build a second ClientHelloInfo per
		// handshake (1 allocation, ~350 B).
		o.Unknown = store.Rejects
	}
	if a := t.ACME; a != nil {
		m, err := g.acmeManager(cfg, lc, a)
		if err != nil {
			return nil, err
		}
		e.acme = append(e.acme, m)
		o.NextProtos = append(o.NextProtos, acme.ALPNProto)
		getCert = func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			switch {
			case acme.IsChallenge(hello) || m.Covers(hello.ServerName):
				return m.GetCertificate(hello)
			case store == nil:
				// No certificate to fall back on: an unknown name (counted as unknown_sni),
				// never looked up or ordered by certmagic.
				return nil, certs.ErrUnknownName
			}
			return store.GetCertificate(hello)
		}
		if t.UnknownSNI == config.UnknownSNIReject {
			o.Unknown = func(hello *tls.ClientHelloInfo) bool {
				return !acme.IsChallenge(hello) && !m.Covers(hello.ServerName) && (store == nil || store.Rejects(hello))
			}
		}
	}
	return certs.ServerConfig(getCert, o), nil
}

// acmeManager builds the ACME manager of listener lc, or returns the serving one when its
// settings are the same. HTTP-01 challenges are answered on the first plain HTTP listener of
// cfg, when there is one (port 80 in production, usually the one that redirects to HTTPS).
func (g *Gateway) acmeManager(cfg *config.Config, lc config.Listener, a *config.ACME) (*acme.Manager, error) {
	o := acme.Options{Domains: a.Domains, Email: a.Email, CA: a.CA, Storage: a.Storage, Listener: lc.Address}
	for _, pl := range cfg.Listeners {
		if pl.TLS == nil {
			o.HTTPListener = pl.Address
			break
		}
	}
	if a.CARoot != "" {
		var err error
		if o.CARoots, err = certs.LoadCAs(a.CARoot); err != nil {
			return nil, fmt.Errorf("acme.ca_root: %w", err)
		}
	}
	if d := a.DNS01; d != nil {
		o.DNS01 = &acme.DNS01{Server: d.Server, TSIGKey: d.TSIGKey, TSIGSecret: d.TSIGSecret, TSIGAlgorithm: d.TSIGAlgorithm,
			Resolvers: d.Resolvers, PropagationTimeout: d.PropagationTimeout.D()}
	}
	if g.edge != nil {
		for _, m := range g.edge.acme {
			if m.Options().Same(o) {
				return m, nil
			}
		}
	}
	return acme.New(o, g.log, g.obs.m)
}

// watch starts the certificate file watchers and the ACME managers, but those shared with
// prev (the edgeTLS e replaces; nil for none), which run already.
func (e *edgeTLS) watch(prev *edgeTLS) {
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	for _, s := range e.stores {
		go s.Watch(ctx, certPollInterval)
	}
	for _, c := range e.clientCAs {
		go c.Watch(ctx, certPollInterval)
	}
	for _, m := range e.acme {
		if !prev.hasACME(m) {
			m.Start()
		}
	}
}

// close stops the watchers and the ACME managers, but those shared with keep (the edgeTLS
// serving next or still; nil for none).
func (e *edgeTLS) close(keep *edgeTLS) {
	if e == nil {
		return
	}
	if e.stop != nil {
		e.stop()
	}
	for _, m := range e.acme {
		if !keep.hasACME(m) {
			m.Close()
		}
	}
}

func (e *edgeTLS) hasACME(m *acme.Manager) bool { return e != nil && slices.Contains(e.acme, m) }

// Handshake implements server.TLSObserver: handshakes are counted by listener, version and
// resumption, failures by reason (server.HandshakeFailure).
func (g *Gateway) Handshake(listener string, st *tls.ConnectionState, err error) {
	if err != nil {
		g.obs.m.TLSHandshakeFailed(listener, server.HandshakeFailure(err))
		return
	}
	g.obs.m.TLSHandshake(listener, tls.VersionName(st.Version), st.DidResume)
}

// TLSFailed implements server.TLSObserver: connections that ended on a TLS error after
// their handshake are counted by listener and reason (server.TLSFailure).
func (g *Gateway) TLSFailed(listener, reason string) { g.obs.m.TLSConnFailed(listener, reason) }

var _ server.TLSObserver = (*Gateway)(nil)

// redirectHTTPS answers a request on a redirecting listener, an HTTP/1.1 exchange or an h2c
// stream, with a 308 to the same host and target over HTTPS on port. An IPv6 literal keeps
// its brackets ("https://[::1]:8443/"); "OPTIONS *" goes to "/".
func redirectHTTPS(ex downstream, port int) {
	req := ex.Request()
	host := hostOnly(string(req.Host))
	if host == "" {
		ex.CloseAfter()
		ex.WriteError(reason.New(400, reason.BadRequest, "", fmt.Errorf("no Host to redirect to")), "")
		return
	}
	var loc string
	switch {
	case port != 443:
		loc = "https://" + net.JoinHostPort(host, strconv.Itoa(port))
	case strings.Contains(host, ":"):
		loc = "https://[" + host + "]"
	default:
		loc = "https://" + host
	}
	if path := string(req.Path); path == "*" {
		loc += "/"
	} else {
		loc += path
	}
	if req.Query != nil {
		loc += "?" + string(req.Query)
	}
	var h h1.Header
	h.Add("Location", loc)
	ex.WriteHead(308, nil, &h, 0)
}

// answerHTTPChallenge answers an ACME HTTP-01 validation request on a plain listener:
// 200 with the key authorization, logged. A request under the challenge path for a name
// that ms cover is the gateway's even when its token is unknown: 404
// acme_challenge_unknown, logged and counted, never routed (a backend that answered there
// could prove control of the name to a CA for someone else's account). It reports whether
// ex was answered.
func (g *Gateway) answerHTTPChallenge(ex *server.Exchange, ms []*acme.Manager) bool {
	if !bytes.HasPrefix(ex.Req.Path, []byte(acme.HTTPChallengePrefix)) {
		return false
	}
	host := string(ex.Req.Host)
	covered := false
	for _, m := range ms {
		if body, ok := m.HandleHTTP(string(ex.Req.Method), host, string(ex.Req.Path)); ok {
			var h h1.Header
			h.Add("Content-Type", "text/plain")
			ex.WriteHead(200, nil, &h, int64(len(body)))
			ex.Write(body)
			g.logAnswered(ex)
			return true
		}
		covered = covered || m.Covers(hostOnly(host))
	}
	if !covered {
		return false
	}
	ex.WriteError(reason.New(404, reason.ACMEChallengeUnknown, "", nil), "")
	g.Rejected(ex, reason.ACMEChallengeUnknown, "no ACME challenge pending for this token")
	return true
}

// hostOnly is host without its port, and an IPv6 literal without its brackets.
func hostOnly(host string) string {
	if h, _, err := net.SplitHostPort(host); err == nil {
		return h
	}
	return strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
}
