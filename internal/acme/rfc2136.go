package acme

import (
	"context"
	"fmt"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"
)

// DNS01 is the DNS server that takes DNS-01 challenge records through RFC 2136 dynamic
// updates, signed with a TSIG key when one is given.
type DNS01 struct {
	Server        string // host:port of the primary server
	TSIGKey       string // key name; "" sends unsigned updates
	TSIGSecret    string // base64
	TSIGAlgorithm string // "hmac-sha256", ...
	// Resolvers are asked for the zone (SOA) and whether a record is visible yet.
	Resolvers []string
	// PropagationTimeout bounds the wait for a record to be visible on the resolvers.
	PropagationTimeout time.Duration
}

// rfc2136 is a libdns provider (what certmagic's DNS-01 solver drives) that adds and
// removes records with RFC 2136 UPDATE messages over TCP.
type rfc2136 struct{ d DNS01 }

var (
	_ libdns.RecordAppender = (*rfc2136)(nil)
	_ libdns.RecordDeleter  = (*rfc2136)(nil)
)

// tsigAlgorithms maps the config's names to the wire names.
var tsigAlgorithms = map[string]string{
	"hmac-sha1":   dns.HmacSHA1,
	"hmac-sha224": dns.HmacSHA224,
	"hmac-sha256": dns.HmacSHA256,
	"hmac-sha384": dns.HmacSHA384,
	"hmac-sha512": dns.HmacSHA512,
}

// AppendRecords adds recs to zone (one UPDATE, all or nothing).
func (p *rfc2136) AppendRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	rrs, err := toRRs(zone, recs)
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(zone))
	m.Insert(rrs)
	if err := p.send(ctx, m); err != nil {
		return nil, fmt.Errorf("rfc2136: add to zone %s at %s: %w", zone, p.d.Server, err)
	}
	return recs, nil
}

// DeleteRecords removes recs (name, type and data) from zone.
func (p *rfc2136) DeleteRecords(ctx context.Context, zone string, recs []libdns.Record) ([]libdns.Record, error) {
	rrs, err := toRRs(zone, recs)
	if err != nil {
		return nil, err
	}
	m := new(dns.Msg)
	m.SetUpdate(dns.Fqdn(zone))
	m.Remove(rrs)
	if err := p.send(ctx, m); err != nil {
		return nil, fmt.Errorf("rfc2136: delete from zone %s at %s: %w", zone, p.d.Server, err)
	}
	return recs, nil
}

// send signs m (when a key is set), sends it over TCP and checks the answer's code.
func (p *rfc2136) send(ctx context.Context, m *dns.Msg) error {
	c := &dns.Client{Net: "tcp", Timeout: 10 * time.Second}
	if p.d.TSIGKey != "" {
		key := dns.Fqdn(p.d.TSIGKey)
		c.TsigSecret = map[string]string{key: p.d.TSIGSecret}
		m.SetTsig(key, tsigAlgorithms[p.d.TSIGAlgorithm], 300, time.Now().Unix())
	}
	r, _, err := c.ExchangeContext(ctx, m, p.d.Server)
	if err != nil {
		return err
	}
	if r.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("server answered %s", dns.RcodeToString[r.Rcode])
	}
	return nil
}

// toRRs turns libdns records (names relative to zone) into wire records.
func toRRs(zone string, recs []libdns.Record) ([]dns.RR, error) {
	out := make([]dns.RR, 0, len(recs))
	for _, rec := range recs {
		r := rec.RR()
		ttl := max(int(r.TTL/time.Second), 0)
		rr, err := dns.NewRR(fmt.Sprintf("%s %d IN %s %s", libdns.AbsoluteName(r.Name, dns.Fqdn(zone)), ttl, r.Type, quoteData(r)))
		if err != nil {
			return nil, fmt.Errorf("rfc2136: record %s %s: %w", r.Name, r.Type, err)
		}
		out = append(out, rr)
	}
	return out, nil
}

// quoteData writes a TXT record's text as one quoted string (challenge values are
// base64url: nothing to escape); other types' data is in zone-file form already.
func quoteData(r libdns.RR) string {
	if r.Type == "TXT" {
		return `"` + r.Data + `"`
	}
	return r.Data
}
