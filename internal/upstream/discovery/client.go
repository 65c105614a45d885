package discovery

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// DefaultTimeout bounds one DNS exchange when [Client.Timeout] is 0.
const DefaultTimeout = 2 * time.Second

// udpSize is the EDNS0 payload size we advertise: the DNS flag day 2020 value, small enough
// to avoid IP fragmentation. Larger answers come back truncated and are re-asked over TCP.
const udpSize = 1232

// maxChain bounds the CNAME chain followed inside one answer.
const maxChain = 8

// ErrNotFound means the name does not exist (NXDOMAIN).
var ErrNotFound = errors.New("no such name")

// RcodeError is a DNS answer with an error code other than NXDOMAIN (SERVFAIL, REFUSED, ...).
type RcodeError struct {
	Name  string
	RCode dnsmessage.RCode
}

func (e *RcodeError) Error() string {
	return fmt.Sprintf("dns query %s: server answered %s", e.Name, e.RCode)
}

// Client asks one DNS server (a recursive resolver) over UDP, falling back to TCP when an
// answer is truncated. It is safe for concurrent use.
type Client struct {
	// Server is the resolver's host:port.
	Server string
	// Timeout bounds one exchange (UDP, then TCP if truncated). 0: [DefaultTimeout].
	Timeout time.Duration
}

// Answer is what a lookup found: addresses or SRV records, and the smallest TTL of the
// records used (0 when there were none).
type Answer struct {
	Addrs []netip.Addr
	SRV   []dnsmessage.SRVResource
	// Extra are addresses given in the additional section, by lower-case name with the
	// trailing dot (SRV answers often carry the targets' addresses there).
	Extra map[string][]netip.Addr
	TTL   time.Duration
}

// LookupIP returns the A and AAAA addresses of host, asked for in parallel. It fails only
// when both queries fail; NXDOMAIN wins over other errors. An existing name without
// addresses returns no addresses and no error.
func (c *Client) LookupIP(ctx context.Context, host string) (Answer, error) {
	var (
		wg      sync.WaitGroup
		ans     [2]Answer
		errs    [2]error
		qtypes  = [2]dnsmessage.Type{dnsmessage.TypeA, dnsmessage.TypeAAAA}
		outcome Answer
	)
	for i, qt := range qtypes {
		wg.Go(func() { ans[i], errs[i] = c.Lookup(ctx, host, qt) })
	}
	wg.Wait()
	if errs[0] != nil && errs[1] != nil {
		if errors.Is(errs[1], ErrNotFound) {
			return Answer{}, errs[1]
		}
		return Answer{}, errs[0]
	}
	for i := range ans {
		if errs[i] != nil {
			continue
		}
		outcome.Addrs = append(outcome.Addrs, ans[i].Addrs...)
		outcome.TTL = minTTL(outcome.TTL, ans[i].TTL)
	}
	return outcome, nil
}

// Lookup asks for the records of type qtype (A, AAAA or SRV) of name and returns those that
// answer it, following CNAMEs within the answer.
func (c *Client) Lookup(ctx context.Context, name string, qtype dnsmessage.Type) (Answer, error) {
	fqdn := strings.ToLower(name)
	if !strings.HasSuffix(fqdn, ".") {
		fqdn += "."
	}
	m, err := c.Exchange(ctx, fqdn, qtype)
	if err != nil {
		return Answer{}, err
	}
	return collect(m, fqdn, qtype), nil
}

// collect picks the answers to fqdn (and to the CNAME chain starting at it) of type qtype.
func collect(m *dnsmessage.Message, fqdn string, qtype dnsmessage.Type) Answer {
	var a Answer
	names := map[string]bool{fqdn: true}
	for range maxChain {
		grew := false
		for _, r := range m.Answers {
			cn, ok := r.Body.(*dnsmessage.CNAMEResource)
			if !ok || !names[lower(r.Header.Name)] || names[lower(cn.CNAME)] {
				continue
			}
			names[lower(cn.CNAME)], grew = true, true
			a.TTL = minTTL(a.TTL, ttlOf(r))
		}
		if !grew {
			break
		}
	}
	for _, r := range m.Answers {
		if r.Header.Type != qtype || !names[lower(r.Header.Name)] {
			continue
		}
		switch b := r.Body.(type) {
		case *dnsmessage.AResource:
			a.Addrs = append(a.Addrs, netip.AddrFrom4(b.A))
		case *dnsmessage.AAAAResource:
			a.Addrs = append(a.Addrs, netip.AddrFrom16(b.AAAA).Unmap())
		case *dnsmessage.SRVResource:
			a.SRV = append(a.SRV, *b)
		default:
			continue
		}
		a.TTL = minTTL(a.TTL, ttlOf(r))
	}
	for _, r := range m.Additionals {
		var ip netip.Addr
		switch b := r.Body.(type) {
		case *dnsmessage.AResource:
			ip = netip.AddrFrom4(b.A)
		case *dnsmessage.AAAAResource:
			ip = netip.AddrFrom16(b.AAAA).Unmap()
		default:
			continue
		}
		if a.Extra == nil {
			a.Extra = map[string][]netip.Addr{}
		}
		n := lower(r.Header.Name)
		a.Extra[n] = append(a.Extra[n], ip)
	}
	return a
}

// Exchange sends one query for fqdn (with the trailing dot) and returns the answer message.
// NXDOMAIN is [ErrNotFound]; another error code is a [*RcodeError].
func (c *Client) Exchange(ctx context.Context, fqdn string, qtype dnsmessage.Type) (*dnsmessage.Message, error) {
	qname, err := dnsmessage.NewName(fqdn)
	if err != nil {
		return nil, fmt.Errorf("dns query %s: %w", fqdn, err)
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	q := dnsmessage.Question{Name: qname, Type: qtype, Class: dnsmessage.ClassINET}
	id := uint16(rand.Uint32())
	req, err := packQuery(id, q)
	if err != nil {
		return nil, fmt.Errorf("dns query %s: %w", fqdn, err)
	}
	m, err := c.roundTrip(ctx, "udp", req, id, q)
	if err == nil && m.Header.Truncated {
		m, err = c.roundTrip(ctx, "tcp", req, id, q)
	}
	if err != nil {
		return nil, fmt.Errorf("dns query %s %s to %s: %w", fqdn, qtype, c.Server, err)
	}
	switch m.Header.RCode {
	case dnsmessage.RCodeSuccess:
		return m, nil
	case dnsmessage.RCodeNameError:
		return nil, fmt.Errorf("dns query %s: %w", fqdn, ErrNotFound)
	}
	return nil, &RcodeError{Name: fqdn, RCode: m.Header.RCode}
}

func packQuery(id uint16, q dnsmessage.Question) ([]byte, error) {
	var opt dnsmessage.ResourceHeader
	if err := opt.SetEDNS0(udpSize, dnsmessage.RCodeSuccess, false); err != nil {
		return nil, err
	}
	m := dnsmessage.Message{
		Header:      dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions:   []dnsmessage.Question{q},
		Additionals: []dnsmessage.Resource{{Header: opt, Body: &dnsmessage.OPTResource{}}},
	}
	return m.Pack()
}

// roundTrip sends req over network and reads until the matching answer arrives (UDP
// datagrams with another ID or question are ignored, as stray or spoofed).
func (c *Client) roundTrip(ctx context.Context, network string, req []byte, id uint16, q dnsmessage.Question) (*dnsmessage.Message, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, network, c.Server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stop()
	if network == "tcp" {
		return tcpRoundTrip(conn, req, id, q)
	}
	if _, err := conn.Write(req); err != nil {
		return nil, err
	}
	buf := make([]byte, udpSize)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return nil, err
		}
		if m, ok := matching(buf[:n], id, q); ok {
			return m, nil
		}
	}
}

func tcpRoundTrip(conn net.Conn, req []byte, id uint16, q dnsmessage.Question) (*dnsmessage.Message, error) {
	out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(req)), uint16(len(req)))
	if _, err := conn.Write(append(out, req...)); err != nil {
		return nil, err
	}
	var l [2]byte
	if _, err := io.ReadFull(conn, l[:]); err != nil {
		return nil, err
	}
	buf := make([]byte, binary.BigEndian.Uint16(l[:]))
	if _, err := io.ReadFull(conn, buf); err != nil {
		return nil, err
	}
	m, ok := matching(buf, id, q)
	if !ok {
		return nil, errors.New("answer does not match the query")
	}
	return m, nil
}

// matching parses b and reports whether it answers query id for q.
func matching(b []byte, id uint16, q dnsmessage.Question) (*dnsmessage.Message, bool) {
	var m dnsmessage.Message
	if err := m.Unpack(b); err != nil || !m.Header.Response || m.Header.ID != id {
		return nil, false
	}
	if len(m.Questions) != 1 || m.Questions[0].Type != q.Type ||
		!strings.EqualFold(m.Questions[0].Name.String(), q.Name.String()) {
		return nil, false
	}
	return &m, true
}

func lower(n dnsmessage.Name) string { return strings.ToLower(n.String()) }

func ttlOf(r dnsmessage.Resource) time.Duration { return time.Duration(r.Header.TTL) * time.Second }

// minTTL is the smaller of two TTLs where 0 means "none yet".
func minTTL(a, b time.Duration) time.Duration {
	if a == 0 || (b != 0 && b < a) {
		return b
	}
	return a
}
