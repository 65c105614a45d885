package testutil

import (
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// DNSUpdateServer is an authoritative DNS server for one zone on 127.0.0.1 (UDP and TCP on
// one port), as a primary server running BIND would be for ACME's DNS-01 challenge: it
// accepts RFC 2136 updates of TXT records signed with its one TSIG key (hmac-sha256),
// refuses every other update, and answers SOA queries for the zone's apex and TXT queries
// from what the updates left.
type DNSUpdateServer struct {
	// Addr is host:port of both listeners.
	Addr string

	zone, key string
	srvs      []*dns.Server

	mu                sync.Mutex
	txt               map[string][]string // by lower-case FQDN
	accepted, refused int
}

// NewDNSUpdateServer serves zone with TSIG key keyName and base64 secret until the test ends.
func NewDNSUpdateServer(t testing.TB, zone, keyName, secret string) *DNSUpdateServer {
	t.Helper()
	s := &DNSUpdateServer{zone: dns.Fqdn(strings.ToLower(zone)), key: dns.Fqdn(keyName), txt: map[string][]string{}}
	var udp net.PacketConn
	var tcp net.Listener
	for {
		var err error
		if udp, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if tcp, err = net.Listen("tcp", udp.LocalAddr().String()); err == nil {
			break
		}
		udp.Close() // the TCP port is taken: another
	}
	s.Addr = udp.LocalAddr().String()
	secrets := map[string]string{s.key: secret}
	// miekg/dns refuses UPDATE messages (NOTIMP) unless the server accepts them.
	accept := func(h dns.Header) dns.MsgAcceptAction {
		if int(h.Bits>>11)&0xF == dns.OpcodeUpdate {
			return dns.MsgAccept
		}
		return dns.DefaultMsgAcceptFunc(h)
	}
	s.srvs = []*dns.Server{
		{PacketConn: udp, Handler: s, TsigSecret: secrets, MsgAcceptFunc: accept},
		{Listener: tcp, Handler: s, TsigSecret: secrets, MsgAcceptFunc: accept},
	}
	for _, srv := range s.srvs {
		started := make(chan struct{})
		srv.NotifyStartedFunc = func() { close(started) }
		go srv.ActivateAndServe()
		<-started
	}
	t.Cleanup(func() {
		for _, srv := range s.srvs {
			srv.Shutdown()
		}
	})
	return s
}

// TXT returns the TXT values of name now.
func (s *DNSUpdateServer) TXT(name string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.txt[dns.Fqdn(strings.ToLower(name))]...)
}

// Updates returns how many updates were applied and how many refused.
func (s *DNSUpdateServer) Updates() (accepted, refused int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, s.refused
}

// ServeDNS implements dns.Handler.
func (s *DNSUpdateServer) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := new(dns.Msg)
	m.SetReply(r)
	m.Authoritative = true
	if r.Opcode == dns.OpcodeUpdate {
		m.Rcode = s.update(w, r)
		if t := r.IsTsig(); t != nil && w.TsigStatus() == nil {
			m.SetTsig(t.Hdr.Name, t.Algorithm, 300, time.Now().Unix())
		}
		w.WriteMsg(m)
		return
	}
	if len(r.Question) == 1 {
		q := r.Question[0]
		name := strings.ToLower(q.Name)
		switch {
		case !dns.IsSubDomain(s.zone, name):
			m.Rcode = dns.RcodeRefused
		case q.Qtype == dns.TypeSOA && name == s.zone:
			m.Answer = append(m.Answer, s.soa())
		case q.Qtype == dns.TypeTXT:
			s.mu.Lock()
			for _, v := range s.txt[name] {
				m.Answer = append(m.Answer, &dns.TXT{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 1}, Txt: []string{v}})
			}
			s.mu.Unlock()
		}
		if len(m.Answer) == 0 && m.Rcode == dns.RcodeSuccess {
			m.Ns = append(m.Ns, s.soa())
		}
	}
	w.WriteMsg(m)
}

func (s *DNSUpdateServer) soa() dns.RR {
	return &dns.SOA{Hdr: dns.RR_Header{Name: s.zone, Rrtype: dns.TypeSOA, Class: dns.ClassINET, Ttl: 60},
		Ns: "ns1." + s.zone, Mbox: "hostmaster." + s.zone, Serial: 1, Refresh: 60, Retry: 60, Expire: 600, Minttl: 1}
}

// update applies r's TXT changes when r is signed with the key and inside the zone.
func (s *DNSUpdateServer) update(w dns.ResponseWriter, r *dns.Msg) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t := r.IsTsig(); t == nil || w.TsigStatus() != nil || !strings.EqualFold(t.Hdr.Name, s.key) {
		s.refused++
		return dns.RcodeRefused
	}
	if len(r.Question) != 1 || !strings.EqualFold(r.Question[0].Name, s.zone) {
		s.refused++
		return dns.RcodeNotZone
	}
	for _, rr := range r.Ns {
		h := rr.Header()
		name := strings.ToLower(h.Name)
		if !dns.IsSubDomain(s.zone, name) {
			s.refused++
			return dns.RcodeNotZone
		}
		txt, ok := rr.(*dns.TXT)
		switch {
		case h.Class == dns.ClassANY:
			delete(s.txt, name)
		case !ok:
			s.refused++
			return dns.RcodeRefused
		case h.Class == dns.ClassINET:
			s.txt[name] = append(s.txt[name], strings.Join(txt.Txt, ""))
		case h.Class == dns.ClassNONE:
			v := strings.Join(txt.Txt, "")
			var keep []string
			for _, old := range s.txt[name] {
				if old != v {
					keep = append(keep, old)
				}
			}
			s.txt[name] = keep
		}
	}
	s.accepted++
	return dns.RcodeSuccess
}
