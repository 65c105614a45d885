// Package realip finds a request's real client address behind trusted proxies and says what
// X-Forwarded-For to send upstream, so that the forwarded field is truthful: every address in
// it was put there by the client's own connection or by a proxy the listener trusts.
//
// The peer (the TCP peer, or the client a trusted proxy named in a PROXY protocol header) is
// the client unless it is trusted. A trusted peer's X-Forwarded-For fields are read as one
// list, right to left, skipping trusted hops: the first address that is not trusted is the
// client (when every one is trusted, the leftmost is). An element that is not an address
// (a spoof, "unknown", garbage) ends the walk: the hop to its right, which is trusted and
// appended it, is the client. Elements left of the client are dropped from the forwarded
// field: nobody trusted vouches for them. An untrusted peer's X-Forwarded-For is dropped
// whole. This is nginx's real_ip_recursive and Envoy's trusted-hops walk, with the forwarded
// field cut to match.
package realip

import (
	"fmt"
	"net/netip"
	"unsafe"

	"sluice/internal/config"
	"sluice/internal/h1"
)

// maxHops bounds the X-Forwarded-For elements examined (the rightmost ones).
const maxHops = 32

// Trusted is a set of trusted proxy prefixes. The zero value trusts nobody.
type Trusted struct{ prefixes []netip.Prefix }

// New parses the CIDRs (or single addresses) of listeners[].trusted_proxies.
func New(cidrs []string) (*Trusted, error) {
	t := &Trusted{}
	for _, s := range cidrs {
		p, err := config.ParsePrefix(s)
		if err != nil {
			return nil, fmt.Errorf("trusted_proxies: %w", err)
		}
		t.prefixes = append(t.prefixes, p)
	}
	return t, nil
}

// Empty reports whether t trusts nobody.
func (t *Trusted) Empty() bool { return t == nil || len(t.prefixes) == 0 }

// Contains reports whether a is trusted.
func (t *Trusted) Contains(a netip.Addr) bool {
	if t == nil {
		return false
	}
	a = a.Unmap()
	for _, p := range t.prefixes {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Resolve returns the client of a request from peer with header h, and appends to dst the
// X-Forwarded-For value to send upstream. It does not allocate (beyond growing dst).
func (t *Trusted) Resolve(peer netip.Addr, h *h1.Header, dst []byte) (client netip.Addr, fwd []byte) {
	peer = peer.Unmap()
	if !t.Contains(peer) {
		return peer, peer.AppendTo(dst)
	}
	var elems [maxHops][]byte
	n := 0
	for i := range h.Fields {
		f := &h.Fields[i]
		if !h1.EqualFold(f.Name, "X-Forwarded-For") {
			continue
		}
		list := f.Value
		for len(list) > 0 {
			var el []byte
			el, list = next(list)
			if len(el) == 0 {
				continue
			}
			if n == maxHops { // keep the rightmost maxHops
				copy(elems[:], elems[1:])
				n--
			}
			elems[n] = el
			n++
		}
	}
	client = peer
	first := n // index of the client's element; n: the peer itself
	for i := n - 1; i >= 0; i-- {
		a, ok := parseHop(elems[i])
		if !ok {
			break
		}
		client, first = a, i
		if !t.Contains(a) {
			break
		}
	}
	fwd = dst
	for i := first; i < n; i++ {
		a, _ := parseHop(elems[i])
		fwd = a.AppendTo(fwd)
		fwd = append(fwd, ", "...)
	}
	return client, peer.AppendTo(fwd)
}

// next splits the first comma-separated element off list, without surrounding spaces.
func next(list []byte) (el, rest []byte) {
	i := 0
	for i < len(list) && list[i] != ',' {
		i++
	}
	el, rest = list[:i], list[i:]
	if len(rest) > 0 {
		rest = rest[1:]
	}
	for len(el) > 0 && (el[0] == ' ' || el[0] == '\t') {
		el = el[1:]
	}
	for len(el) > 0 && (el[len(el)-1] == ' ' || el[len(el)-1] == '\t') {
		el = el[:len(el)-1]
	}
	return el, rest
}

// parseHop parses an X-Forwarded-For element: an address, or "addr:port" / "[v6]:port" as
// some proxies write it.
func parseHop(b []byte) (netip.Addr, bool) {
	s := unsafe.String(unsafe.SliceData(b), len(b)) // ParseAddr keeps nothing of it
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Zone() == "" {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}
