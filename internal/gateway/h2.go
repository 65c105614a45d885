package gateway

import (
	"sluice/internal/config"
	"sluice/internal/proxy"
	"sluice/internal/server"
)

// ServeH2 implements server.StreamHandler: an HTTP/2 stream is routed, proxied, logged and
// counted exactly as an HTTP/1.1 request (serve). A stream on a redirecting listener (h2c
// beside redirect_https) gets the redirect, as HTTP/1.1 does: routing it would serve over
// plain HTTP what the listener sends to HTTPS. ACME HTTP-01 challenges belong to HTTP/1.1
// (the CA's validation requests) and are not looked for.
func (g *Gateway) ServeH2(s *server.Stream) {
	gen := g.enter()
	defer gen.inflight.Add(-1)
	if r := *g.redirects.Load(); len(r) > 0 {
		if port, ok := r[s.ListenerName()]; ok {
			redirectHTTPS(s, port)
			g.logAnswered(s)
			return
		}
	}
	g.serve(gen, s)
}

// H2Conn, H2GoAway, H2Limit and H2Error implement server.H2Observer with the metrics.
func (g *Gateway) H2Conn(listener string, tls bool) { g.obs.m.H2Conn(listener, tls) }
func (g *Gateway) H2GoAway(listener, code string)   { g.obs.m.H2GoAway(listener, code) }
func (g *Gateway) H2Limit(listener, limit string)   { g.obs.m.H2Limit(listener, limit) }
func (g *Gateway) H2Error(listener, token string)   { g.obs.m.H2Error(listener, token) }

// h2Settings maps a listener's protocols and http2 block to the server's settings (nil:
// HTTP/1.x only).
func h2Settings(lc config.Listener) *server.H2Settings {
	tlsH2, h2c := lc.HasProtocol(config.ProtoH2) && lc.TLS != nil, lc.HasProtocol(config.ProtoH2C) && lc.TLS == nil
	if !tlsH2 && !h2c {
		return nil
	}
	h := lc.HTTP2
	return &server.H2Settings{
		Cleartext:            h2c,
		MaxConcurrentStreams: uint32(h.MaxConcurrentStreams),
		StreamWindow:         int32(h.StreamWindowBytes),
		ConnWindow:           int32(h.ConnWindowBytes),
		MaxFrameBytes:        uint32(h.MaxFrameBytes),
		MaxResetsPerSecond:   h.MaxResetsPerSecond,
		MaxControlPerSecond:  h.MaxControlFramesPerSecond,
		MaxEmptyPerSecond:    h.MaxEmptyFramesPerSecond,
		MaxContinuations:     h.MaxContinuationFrames,
		DrainWait:            h.DrainWait.D(),
	}
}

// An HTTP/2 stream is the proxy's downstream, with the cancel hook, interim responses,
// watched body waits (an early answer while the client is slow to send) and its arrival time.
var (
	_ proxy.Downstream     = (*server.Stream)(nil)
	_ proxy.CancelNotifier = (*server.Stream)(nil)
	_ proxy.InterimWriter  = (*server.Stream)(nil)
	_ proxy.BodyWatcher    = (*server.Stream)(nil)
	_ proxy.Arrival        = (*server.Stream)(nil)
	_ server.StreamHandler = (*Gateway)(nil)
	_ server.H2Observer    = (*Gateway)(nil)
)
