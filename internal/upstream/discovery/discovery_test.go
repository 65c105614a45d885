package discovery

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"sluice/internal/testutil"
	"sluice/internal/upstream"
	"sluice/internal/upstream/discovery/dnstest"
)

func newServer(t *testing.T) *dnstest.Server {
	t.Helper()
	s, err := dnstest.NewServer()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s
}

func TestClamp(t *testing.T) {
	tests := []struct {
		name        string
		ttl, lo, hi time.Duration
		want        time.Duration
	}{
		{name: "inside", ttl: 30 * time.Second, lo: time.Second, hi: time.Minute, want: 30 * time.Second},
		{name: "below floor", ttl: 200 * time.Millisecond, lo: time.Second, hi: time.Minute, want: time.Second},
		{name: "zero ttl", ttl: 0, lo: time.Second, hi: time.Minute, want: time.Second},
		{name: "above ceiling", ttl: time.Hour, lo: time.Second, hi: time.Minute, want: time.Minute},
		{name: "at floor", ttl: time.Second, lo: time.Second, hi: time.Minute, want: time.Second},
		{name: "at ceiling", ttl: time.Minute, lo: time.Second, hi: time.Minute, want: time.Minute},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := Clamp(tc.ttl, tc.lo, tc.hi); got != tc.want {
				t.Errorf("Clamp(%v, %v, %v) = %v, want %v", tc.ttl, tc.lo, tc.hi, got, tc.want)
			}
		})
	}
	r := &Resolver{}
	if got := r.Next(0); got != DefaultMinTTL {
		t.Errorf("default floor: Next(0) = %v", got)
	}
	if got := r.Next(24 * time.Hour); got != DefaultMaxTTL {
		t.Errorf("default ceiling: Next(24h) = %v", got)
	}
	r = &Resolver{MinTTL: 10 * time.Second, MaxTTL: time.Second} // a ceiling below the floor
	if got := r.Next(5 * time.Second); got != 10*time.Second {
		t.Errorf("floor above ceiling: Next(5s) = %v, want the floor", got)
	}
}

// TestClientLookup runs the wire client against a real DNS server on 127.0.0.1.
func TestClientLookup(t *testing.T) {
	srv := newServer(t)
	srv.SetA("v4.test", 30, "10.0.0.1", "10.0.0.2")
	srv.SetA("v6.test", 40, "2001:db8::1")
	srv.SetA("both.test", 50, "10.0.0.3", "2001:db8::3")
	srv.SetCNAME("alias.test", 20, "v4.test")
	srv.SetSRV("_http._tcp.svc.test", 15,
		dnstest.SRV{Target: "v4.test", Port: 8080, Priority: 1, Weight: 5},
		dnstest.SRV{Target: "v6.test", Port: 9090, Priority: 2, Weight: 1})
	srv.SetSRV("_only-srv.test", 10) // the name exists, with no records of the asked type
	c := &Client{Server: srv.Addr, Timeout: time.Second}
	ctx := context.Background()
	tests := []struct {
		name    string
		host    string
		want    []string
		ttl     time.Duration
		wantErr error
	}{
		{name: "A", host: "v4.test", want: []string{"10.0.0.1", "10.0.0.2"}, ttl: 30 * time.Second},
		{name: "AAAA", host: "v6.test", want: []string{"2001:db8::1"}, ttl: 40 * time.Second},
		{name: "A and AAAA", host: "both.test", want: []string{"10.0.0.3", "2001:db8::3"}, ttl: 50 * time.Second},
		{name: "CNAME chain", host: "alias.test", want: []string{"10.0.0.1", "10.0.0.2"}, ttl: 20 * time.Second},
		{name: "trailing dot and case", host: "V4.Test.", want: []string{"10.0.0.1", "10.0.0.2"}, ttl: 30 * time.Second},
		{name: "NODATA", host: "_only-srv.test", want: nil},
		{name: "NXDOMAIN", host: "missing.test", wantErr: ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ans, err := c.LookupIP(ctx, tc.host)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := addrStrings(ans.Addrs); !slices.Equal(got, tc.want) {
				t.Errorf("addrs = %v, want %v", got, tc.want)
			}
			if ans.TTL != tc.ttl {
				t.Errorf("ttl = %v, want %v", ans.TTL, tc.ttl)
			}
		})
	}
	t.Run("SRV", func(t *testing.T) {
		ans, err := c.Lookup(ctx, "_http._tcp.svc.test", dnsmessage.TypeSRV)
		if err != nil {
			t.Fatal(err)
		}
		if len(ans.SRV) != 2 || ans.SRV[0].Port != 8080 || ans.SRV[0].Weight != 5 || ans.TTL != 15*time.Second {
			t.Fatalf("SRV answer %+v", ans)
		}
	})
	t.Run("timeout", func(t *testing.T) {
		srv.SetSilent("v4.test", true)
		defer srv.SetSilent("v4.test", false)
		c := &Client{Server: srv.Addr, Timeout: 200 * time.Millisecond}
		start := time.Now()
		_, err := c.Lookup(ctx, "v4.test", dnsmessage.TypeA)
		if !errors.Is(err, context.DeadlineExceeded) && !isTimeout(err) {
			t.Fatalf("err = %v, want a timeout", err)
		}
		if el := time.Since(start); el > 2*time.Second {
			t.Errorf("timeout took %v", el)
		}
	})
	t.Run("truncated answer re-asked over TCP", func(t *testing.T) {
		srv.SetTruncate(true)
		defer srv.SetTruncate(false)
		ans, err := c.LookupIP(ctx, "v4.test")
		if err != nil {
			t.Fatal(err)
		}
		if got := addrStrings(ans.Addrs); !slices.Equal(got, []string{"10.0.0.1", "10.0.0.2"}) {
			t.Errorf("addrs over TCP = %v", got)
		}
	})
}

func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}

func addrStrings(as []netip.Addr) []string {
	var out []string
	for _, a := range as {
		out = append(out, a.String())
	}
	slices.Sort(out)
	return out
}

func TestResolve(t *testing.T) {
	srv := newServer(t)
	srv.SetA("a.test", 30, "10.0.0.1")
	srv.SetA("b.test", 5, "10.0.0.2", "2001:db8::2")
	srv.SetSRV("_http._tcp.svc.test", 60,
		dnstest.SRV{Target: "a.test", Port: 8080, Priority: 1, Weight: 3},
		dnstest.SRV{Target: "b.test", Port: 8081, Priority: 1, Weight: 0},
		dnstest.SRV{Target: "c.test", Port: 8082, Priority: 5, Weight: 1}) // backup: unused
	hosts := filepath.Join(t.TempDir(), "hosts")
	os.WriteFile(hosts, []byte("# comment\n127.0.0.9 static.test other # trailing\n::1 static.test\n"), 0o644)
	r := &Resolver{Client: &Client{Server: srv.Addr, Timeout: time.Second}, HostsFile: hosts, MaxTTL: time.Minute}
	tests := []struct {
		name    string
		n       Name
		want    []upstream.Endpoint
		ttl     time.Duration
		wantErr error
	}{
		{name: "host", n: Name{Host: "b.test", Port: 80, Weight: 2}, ttl: 5 * time.Second,
			want: []upstream.Endpoint{{Addr: "10.0.0.2:80", Weight: 2}, {Addr: "[2001:db8::2]:80", Weight: 2}}},
		{name: "hosts file first", n: Name{Host: "static.test", Port: 81}, ttl: time.Minute,
			want: []upstream.Endpoint{{Addr: "127.0.0.9:81", Weight: 1}, {Addr: "[::1]:81", Weight: 1}}},
		{name: "srv lowest priority, weights", n: Name{SRV: "_http._tcp.svc.test", Weight: 2}, ttl: 5 * time.Second,
			want: []upstream.Endpoint{{Addr: "10.0.0.1:8080", Weight: 6}, {Addr: "10.0.0.2:8081", Weight: 2},
				{Addr: "[2001:db8::2]:8081", Weight: 2}}},
		{name: "nxdomain", n: Name{Host: "nope.test", Port: 80}, wantErr: ErrNotFound},
		{name: "srv nxdomain", n: Name{SRV: "_x._tcp.nope.test"}, wantErr: ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			eps, ttl, err := r.Resolve(context.Background(), tc.n)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(eps, tc.want) || ttl != tc.ttl {
				t.Errorf("Resolve = %v ttl %v, want %v ttl %v", eps, ttl, tc.want, tc.ttl)
			}
		})
	}
}

func TestFirstNameserver(t *testing.T) {
	tests := []struct{ name, conf, want string }{
		{"first of two", "# x\nsearch example.com\nnameserver 10.0.0.2\nnameserver 10.0.0.3\n", "10.0.0.2:53"},
		{"ipv6", "nameserver 2001:db8::53\n", "[2001:db8::53]:53"},
		{"none", "search example.com\n", "127.0.0.1:53"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := firstNameserver([]byte(tc.conf)); got != tc.want {
				t.Errorf("firstNameserver = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestWatcher: the watcher applies each change once, keeps the addresses when resolution
// fails, and stops with its context.
func TestWatcher(t *testing.T) {
	srv := newServer(t)
	srv.SetA("svc.test", 1, "10.0.0.1")
	var mu sync.Mutex
	var applied [][]upstream.Endpoint
	w := &Watcher{
		Resolver: &Resolver{Client: &Client{Server: srv.Addr, Timeout: 200 * time.Millisecond},
			MinTTL: 50 * time.Millisecond, MaxTTL: 50 * time.Millisecond, HostsFile: "-"},
		Name: Name{Host: "svc.test", Port: 80}, Upstream: "u",
		Apply: func(eps []upstream.Endpoint) ([]string, []string, error) {
			mu.Lock()
			defer mu.Unlock()
			applied = append(applied, eps)
			return []string{"x"}, nil, nil
		},
	}
	last := func() (int, []upstream.Endpoint) {
		mu.Lock()
		defer mu.Unlock()
		if len(applied) == 0 {
			return 0, nil
		}
		return len(applied), applied[len(applied)-1]
	}
	eps, next := w.Resolve(context.Background())
	if len(eps) != 1 || next != 50*time.Millisecond {
		t.Fatalf("first resolution %v, next %v", eps, next)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, eps, next); close(done) }()
	defer func() { cancel(); <-done }()
	testutil.WaitFor(t, 5*time.Second, "no change applied", func() bool { return srv.Queries("svc.test", dnsmessage.TypeA) >= 4 })
	if n, _ := last(); n != 0 {
		t.Fatalf("unchanged answers applied %d times", n)
	}
	srv.SetA("svc.test", 1, "10.0.0.1", "10.0.0.2")
	testutil.WaitFor(t, 5*time.Second, "change applied", func() bool { _, l := last(); return len(l) == 2 })
	srv.Remove("svc.test") // NXDOMAIN: keep the addresses
	q := srv.Queries("svc.test", dnsmessage.TypeA)
	testutil.WaitFor(t, 5*time.Second, "retries", func() bool { return srv.Queries("svc.test", dnsmessage.TypeA) >= q+3 })
	if n, l := last(); n != 1 || len(l) != 2 {
		t.Fatalf("after NXDOMAIN: %d applies, last %v; want the 2 addresses kept", n, l)
	}
}
