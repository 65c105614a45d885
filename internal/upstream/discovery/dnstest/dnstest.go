// Package dnstest is a small authoritative DNS server for tests, on 127.0.0.1 over UDP and
// TCP, whose records a test changes while it runs (as net/http/httptest is for HTTP).
package dnstest

import (
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"

	"golang.org/x/net/dns/dnsmessage"
)

// Server answers queries from its record table. A name with no records is NXDOMAIN; a name
// with records of other types only gets an empty answer (NODATA).
type Server struct {
	// Addr is the host:port of both the UDP and the TCP listener.
	Addr string

	udp net.PacketConn
	tcp net.Listener
	wg  sync.WaitGroup

	mu       sync.Mutex
	records  map[string][]dnsmessage.Resource // by lower-case FQDN
	silent   map[string]bool
	truncate bool
	queries  map[string]int // by "name type", e.g. "svc.test. TypeA"
}

// SRV is one SRV record.
type SRV struct {
	Target           string
	Port             uint16
	Priority, Weight uint16
}

// NewServer starts a server on 127.0.0.1 at a free port, UDP and TCP on the same port.
func NewServer() (*Server, error) {
	for {
		udp, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		tcp, err := net.Listen("tcp", udp.LocalAddr().String())
		if err != nil {
			udp.Close() // the TCP port is taken: try another
			continue
		}
		s := &Server{Addr: udp.LocalAddr().String(), udp: udp, tcp: tcp,
			records: map[string][]dnsmessage.Resource{}, silent: map[string]bool{}, queries: map[string]int{}}
		s.wg.Go(s.serveUDP)
		s.wg.Go(s.serveTCP)
		return s, nil
	}
}

// Close stops the server and waits for its goroutines.
func (s *Server) Close() {
	s.udp.Close()
	s.tcp.Close()
	s.wg.Wait()
}

// SetA replaces name's A and AAAA records with ips (IPv4 or IPv6 literals), with ttl seconds.
func (s *Server) SetA(name string, ttl uint32, ips ...string) {
	var rs []dnsmessage.Resource
	for _, ip := range ips {
		a := netip.MustParseAddr(ip)
		if a.Is4() {
			rs = append(rs, resource(name, dnsmessage.TypeA, ttl, &dnsmessage.AResource{A: a.As4()}))
		} else {
			rs = append(rs, resource(name, dnsmessage.TypeAAAA, ttl, &dnsmessage.AAAAResource{AAAA: a.As16()}))
		}
	}
	s.replace(name, rs, dnsmessage.TypeA, dnsmessage.TypeAAAA)
}

// SetSRV replaces name's SRV records.
func (s *Server) SetSRV(name string, ttl uint32, recs ...SRV) {
	var rs []dnsmessage.Resource
	for _, r := range recs {
		rs = append(rs, resource(name, dnsmessage.TypeSRV, ttl, &dnsmessage.SRVResource{
			Priority: r.Priority, Weight: r.Weight, Port: r.Port, Target: dnsmessage.MustNewName(fqdn(r.Target))}))
	}
	s.replace(name, rs, dnsmessage.TypeSRV)
}

// SetCNAME makes name an alias of target.
func (s *Server) SetCNAME(name string, ttl uint32, target string) {
	rs := []dnsmessage.Resource{resource(name, dnsmessage.TypeCNAME, ttl,
		&dnsmessage.CNAMEResource{CNAME: dnsmessage.MustNewName(fqdn(target))})}
	s.replace(name, rs, dnsmessage.TypeCNAME)
}

// Remove deletes every record of name (it answers NXDOMAIN afterwards).
func (s *Server) Remove(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.records, fqdn(name))
}

// SetSilent makes the server drop queries for name (the client times out).
func (s *Server) SetSilent(name string, on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.silent[fqdn(name)] = on
}

// SetTruncate makes UDP answers empty and truncated, so that clients re-ask over TCP.
func (s *Server) SetTruncate(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate = on
}

// Queries returns how many queries for name of type qtype arrived (UDP and TCP).
func (s *Server) Queries(name string, qtype dnsmessage.Type) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[fqdn(name)+" "+qtype.String()]
}

func (s *Server) replace(name string, rs []dnsmessage.Resource, types ...dnsmessage.Type) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := fqdn(name)
	var keep []dnsmessage.Resource
	for _, r := range s.records[n] {
		if !contains(types, r.Header.Type) {
			keep = append(keep, r)
		}
	}
	s.records[n] = append(keep, rs...)
}

func (s *Server) serveUDP() {
	buf := make([]byte, 65535)
	for {
		n, from, err := s.udp.ReadFrom(buf)
		if err != nil {
			return
		}
		if out := s.answer(buf[:n], true); out != nil {
			s.udp.WriteTo(out, from)
		}
	}
}

func (s *Server) serveTCP() {
	for {
		c, err := s.tcp.Accept()
		if err != nil {
			return
		}
		s.wg.Go(func() {
			defer c.Close()
			var l [2]byte
			if _, err := io.ReadFull(c, l[:]); err != nil {
				return
			}
			req := make([]byte, binary.BigEndian.Uint16(l[:]))
			if _, err := io.ReadFull(c, req); err != nil {
				return
			}
			if out := s.answer(req, false); out != nil {
				c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...))
			}
		})
	}
}

// answer builds the reply to req (nil: no reply).
func (s *Server) answer(req []byte, udp bool) []byte {
	var q dnsmessage.Message
	if err := q.Unpack(req); err != nil || len(q.Questions) != 1 {
		return nil
	}
	qq := q.Questions[0]
	n := strings.ToLower(qq.Name.String())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.queries[n+" "+qq.Type.String()]++
	if s.silent[n] {
		return nil
	}
	m := dnsmessage.Message{Header: dnsmessage.Header{ID: q.Header.ID, Response: true, Authoritative: true,
		RecursionDesired: q.Header.RecursionDesired}, Questions: q.Questions}
	rs, ok := s.records[n]
	switch {
	case !ok:
		m.Header.RCode = dnsmessage.RCodeNameError
	case udp && s.truncate:
		m.Header.Truncated = true
	default:
		for _, r := range rs {
			if r.Header.Type == qq.Type || r.Header.Type == dnsmessage.TypeCNAME {
				m.Answers = append(m.Answers, r)
			}
		}
		m.Answers = append(m.Answers, s.chaseLocked(rs, qq.Type)...)
	}
	out, err := m.Pack()
	if err != nil {
		return nil
	}
	return out
}

// chaseLocked returns the records of type qtype of the CNAME target in rs, if any.
func (s *Server) chaseLocked(rs []dnsmessage.Resource, qtype dnsmessage.Type) []dnsmessage.Resource {
	var out []dnsmessage.Resource
	for _, r := range rs {
		if cn, ok := r.Body.(*dnsmessage.CNAMEResource); ok {
			for _, tr := range s.records[strings.ToLower(cn.CNAME.String())] {
				if tr.Header.Type == qtype {
					out = append(out, tr)
				}
			}
		}
	}
	return out
}

func resource(name string, t dnsmessage.Type, ttl uint32, body dnsmessage.ResourceBody) dnsmessage.Resource {
	return dnsmessage.Resource{Header: dnsmessage.ResourceHeader{Name: dnsmessage.MustNewName(fqdn(name)),
		Type: t, Class: dnsmessage.ClassINET, TTL: ttl}, Body: body}
}

func fqdn(name string) string {
	name = strings.ToLower(name)
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	return name
}

func contains(ts []dnsmessage.Type, t dnsmessage.Type) bool {
	for _, x := range ts {
		if x == t {
			return true
		}
	}
	return false
}
