package server

import (
	"net/netip"
	"time"

	"sluice/internal/proxyproto"
)

// readProxyHeader reads the PROXY protocol header of a connection from a trusted peer on a
// listener with proxy_protocol (Settings.ProxyProtocol), under the read-header timeout, and
// takes the client it names as the connection's client. It returns false when the connection
// must close: the header is missing or malformed, or did not arrive in time. A peer that is
// not trusted sends no header: its bytes are HTTP (a PROXY line from it is a bad request).
func (c *conn) readProxyHeader() bool {
	peer, err := netip.ParseAddr(c.clientIP)
	if err != nil || !c.st.ProxyProtocol(peer.Unmap()) {
		return true
	}
	if !c.armIdle(time.Now().Add(c.st.ReadHeaderTimeout), 0) {
		return false
	}
	h, err := proxyproto.Read(c.rw)
	c.setActive()
	if err != nil {
		c.srv.log.Debug("PROXY protocol header refused; closing", "remote", c.clientIP, "err", err)
		if obs, ok := c.srv.handler.(ProxyHeaderObserver); ok {
			obs.ProxyHeaderRefused(c.st.Name, err)
		}
		return false
	}
	if !h.Local {
		c.clientIP = h.Source.Addr().String()
	}
	return true
}

// ProxyHeaderObserver is an optional Handler capability: it learns of the PROXY protocol
// headers refused (malformed, missing, late), for metrics.
type ProxyHeaderObserver interface {
	ProxyHeaderRefused(listener string, err error)
}
