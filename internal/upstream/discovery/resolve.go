package discovery

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"sluice/internal/upstream"
)

// Defaults of a [Resolver] built with zero fields; config.Load applies the same ones.
const (
	DefaultMinTTL = time.Second
	DefaultMaxTTL = 300 * time.Second
)

// maxWeight caps an endpoint's weight (as config caps target weights).
const maxWeight = 1_000_000

// ErrNoAddresses means a name exists but resolved to no address.
var ErrNoAddresses = errors.New("no addresses")

// Name is what one config target asks to resolve: Host (A and AAAA) with Port, or SRV.
type Name struct {
	// Host is a host name without the port; Port is the port of every address.
	Host string
	Port int
	// SRV is an SRV name such as "_http._tcp.api.internal"; when set, Host and Port are
	// unused: each record gives a target host (resolved to addresses), port and weight.
	SRV string
	// Weight is the weight of each address; for SRV it multiplies each record's weight.
	Weight int
}

// String returns the name as written in the config ("api.internal:8080" or the SRV name).
func (n Name) String() string {
	if n.SRV != "" {
		return n.SRV
	}
	return net.JoinHostPort(n.Host, strconv.Itoa(n.Port))
}

// Resolver turns [Name]s into endpoints. Host names found in the hosts file are answered
// from it (as the system resolver does, so "localhost" works); the others are asked of
// Client.
type Resolver struct {
	Client *Client
	// MinTTL and MaxTTL clamp the time until the next resolution (0: the defaults).
	MinTTL, MaxTTL time.Duration
	// HostsFile is read before asking DNS ("": /etc/hosts; "-": none).
	HostsFile string
}

// Clamp returns ttl bounded to [lo, hi]. A TTL of 0 (none or "do not cache") gives lo.
func Clamp(ttl, lo, hi time.Duration) time.Duration {
	return max(min(ttl, hi), lo)
}

// Next returns when to resolve again after an answer with ttl.
func (r *Resolver) Next(ttl time.Duration) time.Duration {
	lo := cmp.Or(r.MinTTL, DefaultMinTTL)
	return Clamp(ttl, lo, max(cmp.Or(r.MaxTTL, DefaultMaxTTL), lo))
}

// Resolve returns the endpoints of n, sorted by address, and the TTL of the answer (before
// clamping). A name without addresses is [ErrNoAddresses].
func (r *Resolver) Resolve(ctx context.Context, n Name) ([]upstream.Endpoint, time.Duration, error) {
	var (
		eps []upstream.Endpoint
		ttl time.Duration
		err error
	)
	if n.SRV != "" {
		eps, ttl, err = r.resolveSRV(ctx, n)
	} else {
		var addrs []netip.Addr
		addrs, ttl, err = r.lookupHost(ctx, n.Host)
		for _, a := range addrs {
			eps = append(eps, upstream.Endpoint{Addr: netip.AddrPortFrom(a, uint16(n.Port)).String(), Weight: max(n.Weight, 1)})
		}
	}
	if err != nil {
		return nil, 0, err
	}
	if len(eps) == 0 {
		return nil, ttl, fmt.Errorf("resolve %s: %w", n, ErrNoAddresses)
	}
	slices.SortFunc(eps, func(a, b upstream.Endpoint) int { return cmp.Compare(a.Addr, b.Addr) })
	return slices.CompactFunc(eps, func(a, b upstream.Endpoint) bool { return a.Addr == b.Addr }), ttl, nil
}

// resolveSRV resolves n.SRV and each record's target. Only the records of the lowest
// priority value are used (RFC 2782: the others are for when those are all unreachable,
// which health checks decide better). A record weight of 0 counts as 1.
func (r *Resolver) resolveSRV(ctx context.Context, n Name) ([]upstream.Endpoint, time.Duration, error) {
	ans, err := r.Client.Lookup(ctx, n.SRV, dnsmessage.TypeSRV)
	if err != nil {
		return nil, 0, err
	}
	if len(ans.SRV) == 0 {
		return nil, ans.TTL, nil
	}
	best := slices.MinFunc(ans.SRV, func(a, b dnsmessage.SRVResource) int { return cmp.Compare(a.Priority, b.Priority) }).Priority
	type hostAddrs struct {
		addrs []netip.Addr
		ttl   time.Duration
		err   error
	}
	hosts := map[string]*hostAddrs{}
	for _, s := range ans.SRV {
		h := lower(s.Target)
		if s.Priority != best || h == "." || hosts[h] != nil {
			continue
		}
		hosts[h] = &hostAddrs{}
		if extra, ok := ans.Extra[h]; ok {
			hosts[h].addrs = extra
		}
	}
	var wg sync.WaitGroup
	for h, ha := range hosts {
		if ha.addrs == nil {
			wg.Go(func() { ha.addrs, ha.ttl, ha.err = r.lookupHost(ctx, strings.TrimSuffix(h, ".")) })
		}
	}
	wg.Wait()
	ttl := ans.TTL
	var eps []upstream.Endpoint
	var lastErr error
	for _, s := range ans.SRV {
		ha := hosts[lower(s.Target)]
		if s.Priority != best || ha == nil {
			continue
		}
		if ha.err != nil {
			lastErr = ha.err
			continue
		}
		ttl = minTTL(ttl, ha.ttl)
		w := min(int64(max(s.Weight, 1))*int64(max(n.Weight, 1)), maxWeight)
		for _, a := range ha.addrs {
			eps = append(eps, upstream.Endpoint{Addr: netip.AddrPortFrom(a, s.Port).String(), Weight: int(w)})
		}
	}
	if len(eps) == 0 && lastErr != nil {
		return nil, 0, lastErr
	}
	return eps, ttl, nil
}

// lookupHost returns the addresses of host from the hosts file or else DNS.
func (r *Resolver) lookupHost(ctx context.Context, host string) ([]netip.Addr, time.Duration, error) {
	if addrs := r.fromHosts(host); len(addrs) > 0 {
		return addrs, cmp.Or(r.MaxTTL, DefaultMaxTTL), nil
	}
	ans, err := r.Client.LookupIP(ctx, host)
	if err != nil {
		return nil, 0, err
	}
	return ans.Addrs, ans.TTL, nil
}

// fromHosts returns host's addresses in the hosts file (none when it is missing).
func (r *Resolver) fromHosts(host string) []netip.Addr {
	path := cmp.Or(r.HostsFile, "/etc/hosts")
	if path == "-" {
		return nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	return hostsLookup(data, host)
}

// hostsLookup finds host in hosts-file data ("addr name alias..." lines, '#' comments).
func hostsLookup(data []byte, host string) []netip.Addr {
	host = strings.TrimSuffix(host, ".")
	var out []netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		ip, err := netip.ParseAddr(f[0])
		if err != nil || ip.Zone() != "" {
			continue
		}
		for _, name := range f[1:] {
			if strings.EqualFold(strings.TrimSuffix(name, "."), host) {
				out = append(out, ip.Unmap())
				break
			}
		}
	}
	return out
}

// SystemServer returns the first nameserver of /etc/resolv.conf as host:port (port 53), or
// "127.0.0.1:53" when there is none.
func SystemServer() string {
	data, err := os.ReadFile("/etc/resolv.conf")
	if err != nil {
		return "127.0.0.1:53"
	}
	return firstNameserver(data)
}

func firstNameserver(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 2 && f[0] == "nameserver" {
			if ip, err := netip.ParseAddr(f[1]); err == nil {
				return netip.AddrPortFrom(ip, 53).String()
			}
		}
	}
	return "127.0.0.1:53"
}
