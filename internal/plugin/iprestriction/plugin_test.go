package iprestriction

import (
	"net/netip"
	"testing"
)

func TestAllowed(t *testing.T) {
	pfx := func(ss ...string) []netip.Prefix {
		var out []netip.Prefix
		for _, s := range ss {
			out = append(out, netip.MustParsePrefix(s))
		}
		return out
	}
	p := &IPRestriction{allow: pfx("10.0.0.0/8", "2001:db8::/32"), deny: pfx("10.6.6.0/24", "2001:db8:bad::/48")}
	only := &IPRestriction{deny: pfx("192.0.2.1/32")}
	cases := []struct {
		r    *IPRestriction
		addr string
		want bool
	}{
		{p, "10.1.2.3", true},
		{p, "::ffff:10.1.2.3", true}, // mapped v4 matches v4 entries
		{p, "10.6.6.7", false},       // deny wins over allow
		{p, "11.0.0.1", false},       // outside the allow list
		{p, "2001:db8::1", true},
		{p, "2001:db8:bad::1", false},
		{p, "::1", false},
		{only, "192.0.2.1", false},
		{only, "192.0.2.2", true}, // no allow list: all not denied
	}
	for _, tc := range cases {
		if got := tc.r.Allowed(netip.MustParseAddr(tc.addr)); got != tc.want {
			t.Errorf("Allowed(%s) = %v, want %v", tc.addr, got, tc.want)
		}
	}
	if p.Allowed(netip.Addr{}) || !only.Allowed(netip.Addr{}) {
		t.Error("an unknown client passes only without an allow list")
	}
}
