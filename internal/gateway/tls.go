package gateway

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"time"

	"sluice/internal/certs"
	"sluice/internal/config"
	"sluice/internal/h1"
	"sluice/internal/reason"
	"sluice/internal/server"
)

// certPollInterval is how often certificate files are checked for changes.
const certPollInterval = 2 * time.Second

// edgeTLS is the TLS side of one config's listeners: a certificate store and tls.Config per
// TLS listener (by address), and the HTTPS ports of redirecting listeners (by name). The
// stores' file watchers run from watch until close.
type edgeTLS struct {
	configs   map[string]*tls.Config
	stores    []*certs.Store
	redirects map[string]int
	stop      context.CancelFunc
}

// buildEdgeTLS loads the certificates of cfg's TLS listeners. An error (a file that does not
// load) names the listener and the file; the running config keeps serving.
func (g *Gateway) buildEdgeTLS(cfg *config.Config) (*edgeTLS, error) {
	e := &edgeTLS{configs: map[string]*tls.Config{}, redirects: map[string]int{}}
	for _, lc := range cfg.Listeners {
		if r := lc.RedirectHTTPS; r != nil {
			e.redirects[lc.Name] = r.Port
		}
		t := lc.TLS
		if t == nil {
			continue
		}
		pairs := make([]certs.Pair, len(t.Certificates))
		for i, c := range t.Certificates {
			pairs[i] = certs.Pair{CertFile: c.CertFile, KeyFile: c.KeyFile}
		}
		store, err := certs.New(pairs, t.UnknownSNI == config.UnknownSNIReject, g.log, g.obs.m)
		if err != nil {
			return nil, fmt.Errorf("listener %q: tls: %w", lc.Name, err)
		}
		o := certs.Options{MinVersion: t.MinTLSVersion(), NextProtos: []string{"http/1.1"}, NoSessionTickets: !t.SessionTicketsOn()}
		switch t.ClientAuth {
		case config.ClientAuthOpt:
			o.ClientAuth = tls.VerifyClientCertIfGiven
		case config.ClientAuthRequire:
			o.ClientAuth = tls.RequireAndVerifyClientCert
		}
		if o.ClientAuth != tls.NoClientCert {
			if o.ClientCAs, err = certs.LoadCAs(t.ClientCAFile); err != nil {
				return nil, fmt.Errorf("listener %q: tls.client_ca_file: %w", lc.Name, err)
			}
		}
		e.configs[lc.Address] = certs.ServerConfig(store, o)
		e.stores = append(e.stores, store)
	}
	return e, nil
}

// watch starts the certificate file watchers.
func (e *edgeTLS) watch() {
	ctx, cancel := context.WithCancel(context.Background())
	e.stop = cancel
	for _, s := range e.stores {
		go s.Watch(ctx, certPollInterval)
	}
}

// close stops the watchers.
func (e *edgeTLS) close() {
	if e != nil && e.stop != nil {
		e.stop()
	}
}

// Handshake implements server.TLSObserver: handshakes are counted by listener, version and
// resumption, failures by reason.
func (g *Gateway) Handshake(listener string, st *tls.ConnectionState, err error) {
	if err != nil {
		g.obs.m.TLSHandshakeFailed(listener, server.HandshakeFailure(err))
		return
	}
	g.obs.m.TLSHandshake(listener, tls.VersionName(st.Version), st.DidResume)
}

var _ server.TLSObserver = (*Gateway)(nil)

// redirectHTTPS answers a request on a redirecting listener with a 308 to the same host and
// target over HTTPS on port.
func redirectHTTPS(ex *server.Exchange, port int) {
	host := string(ex.Req.Host)
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "" {
		ex.CloseAfter()
		ex.WriteError(reason.New(400, reason.BadRequest, "", fmt.Errorf("no Host to redirect to")), "")
		return
	}
	loc := "https://" + host
	if port != 443 {
		loc += ":" + strconv.Itoa(port)
	}
	loc += string(ex.Req.Path)
	if ex.Req.Query != nil {
		loc += "?" + string(ex.Req.Query)
	}
	var h h1.Header
	h.Add("Location", loc)
	ex.WriteHead(308, nil, &h, 0)
}
