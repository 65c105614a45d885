package split

import (
	"fmt"
	"math"
	"net/http"
	"testing"
	"time"

	"sluice/internal/config"
	"sluice/internal/h1"
	"sluice/internal/proxy"
	"sluice/internal/upstream"
	"sluice/internal/upstream/balancer"
)

// newUpstreamRoute is a route to an upstream with one target (127.0.0.1:<n>, never dialed).
func newUpstreamRoute(t *testing.T, id string) *proxy.Route {
	t.Helper()
	u := &upstream.Upstream{ID: id}
	ts := []*upstream.Target{{Addr: "127.0.0.1:1", Weight: 1}}
	b, err := balancer.New(config.Balancer{Policy: "round_robin"}, ts)
	if err != nil {
		t.Fatal(err)
	}
	u.Swap(ts, b)
	return &proxy.Route{ID: "r", Upstream: u}
}

// build makes a split over upstreams u0, u1, ... with weights ws.
func build(t *testing.T, ws []int, edit func(*config.Split)) (*Split, map[string]*proxy.Route) {
	t.Helper()
	s := &config.Split{}
	routes := map[string]*proxy.Route{}
	for i, w := range ws {
		id := fmt.Sprintf("u%d", i)
		s.Upstreams = append(s.Upstreams, config.SplitShare{Upstream: id, Weight: &w})
		routes[id] = newUpstreamRoute(t, id)
	}
	if edit != nil {
		edit(s)
	}
	sp, err := New(s, routes)
	if err != nil {
		t.Fatal(err)
	}
	return sp, routes
}

// input is a request header with the fields of h.
func input(h http.Header) *h1.Header {
	var hh h1.Header
	for k, vs := range h {
		for _, v := range vs {
			hh.Add(k, v)
		}
	}
	return &hh
}

// counts picks n requests made by mk and counts them by upstream.
func counts(sp *Split, n int, mk func(i int) *h1.Header) map[string]int {
	got := map[string]int{}
	now := time.Now()
	for i := range n {
		got[sp.Pick(mk(i), now).Upstream.ID]++
	}
	return got
}

// wantShares fails when a count is more than tol percentage points off its weight's share.
func wantShares(t *testing.T, ws []int, got map[string]int, n int, tol float64) {
	t.Helper()
	total := 0
	for _, w := range ws {
		total += w
	}
	for i, w := range ws {
		id := fmt.Sprintf("u%d", i)
		want := 100 * float64(w) / float64(total)
		share := 100 * float64(got[id]) / float64(n)
		if w == 0 && got[id] != 0 {
			t.Errorf("%s has weight 0 and got %d requests", id, got[id])
		}
		if math.Abs(share-want) > tol {
			t.Errorf("%s: %.2f%% of requests, want %.2f%% ± %.1f (counts %v)", id, share, want, tol, got)
		}
	}
}

// TestShares: rotated picks follow the weights within 2 points over 10,000 requests (in
// fact within 0.1: the rotation is deterministic), and a weight of 0 gets nothing.
func TestShares(t *testing.T) {
	for _, ws := range [][]int{{90, 10}, {1, 1, 1}, {5, 95, 0}, {1, 0, 3}, {0, 7}, {1}, {33, 33, 34}, {999, 1}} {
		t.Run(fmt.Sprint(ws), func(t *testing.T) {
			sp, _ := build(t, ws, nil)
			in := input(nil)
			got := counts(sp, 10000, func(int) *h1.Header { return in })
			wantShares(t, ws, got, 10000, 0.1)
		})
	}
}

// TestSticky: a key stays on its share across requests and across a rebuild with the same
// weights (a reload, another gateway); distinct keys spread by the weights; raising a canary
// listed first moves no client off it.
func TestSticky(t *testing.T) {
	sticky := func(s *config.Split) { s.Sticky = &config.Sticky{HashOn: config.StickyCookie, Key: "session"} }
	ws := []int{10, 90}
	sp1, _ := build(t, ws, sticky)
	sp2, _ := build(t, ws, sticky) // a reload: a new split from the same weights
	wider, _ := build(t, []int{20, 80}, sticky)
	user := func(i int) *h1.Header {
		return input(http.Header{"Cookie": {fmt.Sprintf("theme=dark; session=user-%d; x=1", i)}})
	}
	n := 10000
	got := counts(sp1, n, user)
	wantShares(t, ws, got, n, 2)
	now := time.Now()
	moved := 0
	for i := range n {
		first := sp1.Pick(user(i), now).Upstream.ID
		for range 3 {
			if again := sp1.Pick(user(i), now).Upstream.ID; again != first {
				t.Fatalf("user-%d went to %s, then %s", i, first, again)
			}
		}
		if other := sp2.Pick(user(i), now).Upstream.ID; other != first {
			t.Fatalf("user-%d: %s before the reload, %s after", i, first, other)
		}
		w := wider.Pick(user(i), now).Upstream.ID
		if first == "u0" && w != "u0" {
			t.Fatalf("user-%d left the canary when its weight grew", i)
		}
		if first != w {
			moved++
		}
	}
	if moved < n/20 || moved > n*3/20 { // about 10% move onto the canary
		t.Errorf("%d of %d users moved when the canary grew from 10%% to 20%%", moved, n)
	}
	// Without the cookie, requests rotate.
	got = counts(sp1, n, func(int) *h1.Header { return input(nil) })
	wantShares(t, ws, got, n, 0.1)
}

// TestRules: a rule's header sends requests to its upstream, a weight-0 one included.
func TestRules(t *testing.T) {
	sp, _ := build(t, []int{100, 0}, func(s *config.Split) {
		s.Rules = []config.SplitRule{{Upstream: "u1", Headers: []config.ValueMatch{{Name: "X-Canary", Regex: "^(1|yes)$"}}}}
	})
	now := time.Now()
	for _, tc := range []struct {
		h    http.Header
		want string
	}{
		{nil, "u0"},
		{http.Header{"X-Canary": {"yes"}}, "u1"},
		{http.Header{"X-Canary": {"no"}}, "u0"},
	} {
		if got := sp.Pick(input(tc.h), now).Upstream.ID; got != tc.want {
			t.Errorf("headers %v: picked %s, want %s", tc.h, got, tc.want)
		}
	}
}

// TestFallover: a share with no available target gives its requests to the next share
// with a weight; with fallover off, or when no share has a target, the chosen one keeps them.
func TestFallover(t *testing.T) {
	for _, tc := range []struct {
		name     string
		ws       []int
		fallover bool
		down     []string
		want     map[string]int
	}{
		{"u0 down", []int{1, 1, 0}, true, []string{"u0"}, map[string]int{"u1": 1000}},
		{"u1 down", []int{1, 1, 0}, true, []string{"u1"}, map[string]int{"u0": 1000}},
		{"off", []int{1, 1, 0}, false, []string{"u0"}, map[string]int{"u0": 500, "u1": 500}},
		{"all down", []int{1, 1, 0}, true, []string{"u0", "u1"}, map[string]int{"u0": 500, "u1": 500}},
		// u1 has weight 0: it never takes another share's requests, even next in line.
		{"weight 0 never", []int{1, 0, 1}, true, []string{"u0"}, map[string]int{"u2": 1000}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sp, routes := build(t, tc.ws, func(s *config.Split) { s.Fallover = &tc.fallover })
			for _, id := range tc.down {
				u := routes[id].Upstream
				u.SetActive(u.Current().Targets[0], false, "test")
			}
			in := input(nil)
			got := counts(sp, 1000, func(int) *h1.Header { return in })
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("picks %v, want %v", got, tc.want)
			}
		})
	}
}

// TestHashIsStable pins the sticky hash: a change would move every client of every
// canary at the upgrade (the hash must not depend on the process, as hash/maphash does).
func TestHashIsStable(t *testing.T) {
	for key, want := range map[string]uint64{"": 0xf52a15e9a9b5e89b, "user-1": 0xc499b5f8a721df58, "alice": 0xc5d1556d66774a5c} {
		if got := Hash([]byte(key)); got != want {
			t.Errorf("Hash(%q) = %#x, want %#x", key, got, want)
		}
	}
}

func TestCookieValue(t *testing.T) {
	for _, tc := range []struct {
		field, name, want string
		ok                bool
	}{
		{"session=abc", "session", "abc", true},
		{"a=1; session=abc; b=2", "session", "abc", true},
		{`a=1;session="q"`, "session", "q", true},
		{"xsession=abc", "session", "", false},
		{"session=", "session", "", false},
		{"", "session", "", false},
	} {
		v, ok := cookieValue([]byte(tc.field), tc.name)
		if got := string(v); got != tc.want || ok != tc.ok {
			t.Errorf("cookieValue(%q, %q) = %q, %v; want %q, %v", tc.field, tc.name, v, ok, tc.want, tc.ok)
		}
	}
}

// TestPickAllocs: picking allocates nothing.
func TestPickAllocs(t *testing.T) {
	sp, _ := build(t, []int{90, 10}, func(s *config.Split) {
		s.Sticky = &config.Sticky{HashOn: config.StickyHeader, Key: "X-User"}
		s.Rules = []config.SplitRule{{Upstream: "u1", Headers: []config.ValueMatch{{Name: "X-Canary", Present: new(true)}}}}
	})
	in := input(http.Header{"X-User": {"alice"}})
	now := time.Now()
	if n := testing.AllocsPerRun(100, func() { sp.Pick(in, now) }); n != 0 {
		t.Errorf("Pick allocates %.1f times", n)
	}
}
