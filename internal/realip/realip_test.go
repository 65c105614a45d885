package realip

import (
	"net/netip"
	"testing"

	"sluice/internal/h1"
)

func TestResolve(t *testing.T) {
	cases := []struct {
		name    string
		trusted []string
		peer    string
		xff     []string
		client  string
		fwd     string
	}{
		{name: "nobody trusted", peer: "203.0.113.1", xff: []string{"1.1.1.1"}, client: "203.0.113.1", fwd: "203.0.113.1"},
		{name: "peer not trusted", trusted: []string{"10.0.0.0/8"}, peer: "203.0.113.1", xff: []string{"1.1.1.1"}, client: "203.0.113.1", fwd: "203.0.113.1"},
		{name: "one trusted hop", trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2", xff: []string{"198.51.100.1"}, client: "198.51.100.1", fwd: "198.51.100.1, 10.0.0.2"},
		{name: "spoof left of client dropped", trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2", xff: []string{"6.6.6.6, 198.51.100.1"}, client: "198.51.100.1", fwd: "198.51.100.1, 10.0.0.2"},
		{name: "several fields, several hops", trusted: []string{"10.0.0.0/8", "192.168.0.0/16"}, peer: "10.0.0.2", xff: []string{"6.6.6.6, 198.51.100.1", " 192.168.1.1 ,10.9.9.9"}, client: "198.51.100.1", fwd: "198.51.100.1, 192.168.1.1, 10.9.9.9, 10.0.0.2"},
		{name: "all trusted: leftmost", trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2", xff: []string{"10.1.1.1, 10.2.2.2"}, client: "10.1.1.1", fwd: "10.1.1.1, 10.2.2.2, 10.0.0.2"},
		{name: "garbage stops at the hop right of it", trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2", xff: []string{"198.51.100.1, unknown, 10.3.3.3"}, client: "10.3.3.3", fwd: "10.3.3.3, 10.0.0.2"},
		{name: "garbage right away: the peer", trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2", xff: []string{"1.2.3.4, <script>"}, client: "10.0.0.2", fwd: "10.0.0.2"},
		{name: "ports and brackets", trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2", xff: []string{"[2001:db8::1]:443"}, client: "2001:db8::1", fwd: "2001:db8::1, 10.0.0.2"},
		{name: "mapped v4 peer", trusted: []string{"10.0.0.2"}, peer: "::ffff:10.0.0.2", xff: []string{"198.51.100.1"}, client: "198.51.100.1", fwd: "198.51.100.1, 10.0.0.2"},
		{name: "v6 trust", trusted: []string{"2001:db8::/32"}, peer: "2001:db8::9", xff: []string{"2001:db8::8, 198.51.100.1"}, client: "198.51.100.1", fwd: "198.51.100.1, 2001:db8::9"},
		{name: "empty elements skipped", trusted: []string{"10.0.0.0/8"}, peer: "10.0.0.2", xff: []string{",198.51.100.1,,"}, client: "198.51.100.1", fwd: "198.51.100.1, 10.0.0.2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := New(tc.trusted)
			if err != nil {
				t.Fatal(err)
			}
			var h h1.Header
			h.Add("X-Other", "1.2.3.4")
			for _, v := range tc.xff {
				h.Add("X-Forwarded-For", v)
			}
			client, fwd := tr.Resolve(netip.MustParseAddr(tc.peer), &h, nil)
			if client.String() != tc.client || string(fwd) != tc.fwd {
				t.Errorf("Resolve = %s, %q; want %s, %q", client, fwd, tc.client, tc.fwd)
			}
		})
	}
}

// TestResolveManyHops: only the rightmost maxHops elements are examined.
func TestResolveManyHops(t *testing.T) {
	tr, _ := New([]string{"10.0.0.0/8"})
	var h h1.Header
	h.Add("X-Forwarded-For", "198.51.100.1")
	for range 100 {
		h.Add("X-Forwarded-For", "10.1.1.1")
	}
	client, _ := tr.Resolve(netip.MustParseAddr("10.0.0.2"), &h, nil)
	if client.String() != "10.1.1.1" {
		t.Errorf("client = %s, want the leftmost examined trusted hop", client)
	}
}

func TestResolveAllocs(t *testing.T) {
	tr, _ := New([]string{"10.0.0.0/8"})
	var h h1.Header
	h.Add("X-Forwarded-For", "198.51.100.1, 10.1.1.1")
	peer := netip.MustParseAddr("10.0.0.2")
	buf := make([]byte, 0, 128)
	if n := testing.AllocsPerRun(100, func() { tr.Resolve(peer, &h, buf[:0]) }); n != 0 {
		t.Errorf("%v allocations per Resolve, want 0", n)
	}
}

func FuzzResolve(f *testing.F) {
	f.Add("198.51.100.1, 10.1.1.1")
	f.Add("[::1]:80,unknown")
	tr, _ := New([]string{"10.0.0.0/8", "::1"})
	f.Fuzz(func(t *testing.T, xff string) {
		var h h1.Header
		h.Add("X-Forwarded-For", xff)
		client, fwd := tr.Resolve(netip.MustParseAddr("10.0.0.2"), &h, nil)
		if !client.IsValid() {
			t.Fatalf("invalid client for %q", xff)
		}
		if len(fwd) == 0 {
			t.Fatalf("empty forwarded value for %q", xff)
		}
	})
}
