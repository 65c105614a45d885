package router

import (
	"slices"
	"strings"
	"testing"

	"sluice/internal/config"
	"sluice/internal/testutil"
)

func ptr[T any](v T) *T { return &v }

// headers returns an Input.Header func over h, looked up case-insensitively.
func headers(h map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		for k, v := range h {
			if strings.EqualFold(k, name) {
				return v, true
			}
		}
		return "", false
	}
}

// rt builds a route with the given ID and match.
func rt(id string, m config.Match) *config.Route { return &config.Route{ID: id, Match: m} }

// prio builds a route with a priority.
func prio(id string, p int, m config.Match) *config.Route {
	return &config.Route{ID: id, Priority: p, Match: m}
}

// req is a GET for host and target ("/path?query").
func req(host, target string) Input {
	path, query, _ := strings.Cut(target, "?")
	return Input{Method: "GET", Host: host, Path: path, Query: query}
}

type matchCase struct {
	name       string
	routes     []*config.Route
	in         Input
	wantID     string // "" for no match
	wantParams Params
}

func runMatchCases(t *testing.T, cases []matchCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := Compile(tc.routes)
			if err != nil {
				t.Fatalf("Compile: %v", err)
			}
			in := tc.in
			i, ps, ok := tab.Match(&in)
			gotID := ""
			if ok {
				gotID = tc.routes[i].ID
			} else if i != -1 || ps != nil {
				t.Errorf("no match returned index %d params %v, want -1, nil", i, ps)
			}
			if gotID != tc.wantID {
				t.Fatalf("Match(%+v) = route %q, want %q", tc.in, gotID, tc.wantID)
			}
			if !slices.Equal(ps, tc.wantParams) {
				t.Errorf("params = %v, want %v", ps, tc.wantParams)
			}
		})
	}
}

func TestMatchHosts(t *testing.T) {
	v6 := []*config.Route{
		rt("v6", config.Match{Hosts: []string{"[::1]"}}),
		rt("v6bare", config.Match{Hosts: []string{"::2"}}),
	}
	wild := []*config.Route{rt("w", config.Match{Hosts: []string{"*.example.com"}})}
	runMatchCases(t, []matchCase{
		{
			name:   "exact host ignores case and port",
			routes: []*config.Route{rt("a", config.Match{Hosts: []string{"API.example.com"}})},
			in:     req("api.EXAMPLE.com:8443", "/"),
			wantID: "a",
		},
		{
			name:   "exact host mismatch",
			routes: []*config.Route{rt("a", config.Match{Hosts: []string{"api.example.com"}})},
			in:     req("www.example.com", "/"),
		},
		{name: "wildcard one label", routes: wild, in: req("a.example.com", "/"), wantID: "w"},
		{name: "wildcard two labels", routes: wild, in: req("a.b.Example.COM:80", "/"), wantID: "w"},
		{name: "wildcard not the apex", routes: wild, in: req("example.com", "/")},
		{name: "wildcard not a longer label", routes: wild, in: req("aexample.com", "/")},
		{name: "ipv6 with port", routes: v6, in: req("[::1]:8080", "/"), wantID: "v6"},
		{name: "ipv6 without port", routes: v6, in: req("[::1]", "/"), wantID: "v6"},
		{name: "bare ipv6 config", routes: v6, in: req("[::2]:1", "/"), wantID: "v6bare"},
		{name: "ipv6 mismatch", routes: v6, in: req("[::3]:8080", "/")},
		{
			name: "empty host matches only any-host routes",
			routes: []*config.Route{
				rt("h", config.Match{Hosts: []string{"a.com"}, Path: "/"}),
				rt("any", config.Match{PathPrefix: "/"}),
			},
			in:     req("", "/"),
			wantID: "any",
		},
		{
			name: "several hosts on one route",
			routes: []*config.Route{
				rt("x", config.Match{Hosts: []string{"x.com", "*.y.com"}}),
			},
			in:     req("a.y.com", "/"),
			wantID: "x",
		},
		{
			name:   "very long host",
			routes: []*config.Route{rt("w", config.Match{Hosts: []string{"*.example.com"}})},
			in:     req(strings.Repeat("A.", 200)+"Example.com", "/"),
			wantID: "w",
		},
	})
}

func TestMatchPaths(t *testing.T) {
	tree := []*config.Route{
		rt("exact", config.Match{Path: "/a"}),
		rt("exact-slash", config.Match{Path: "/a/"}),
		rt("user", config.Match{Path: "/users/{id}/orders/{order}"}),
		rt("files", config.Match{Path: "/files/{path...}"}),
		rt("root", config.Match{Path: "/"}),
	}
	prefixes := []*config.Route{
		rt("dir", config.Match{PathPrefix: "/api/"}),
		rt("seg", config.Match{PathPrefix: "/v1"}),
	}
	regexes := []*config.Route{
		rt("unanchored", config.Match{PathRegex: "v[0-9]"}),
		rt("anchored", config.Match{PathRegex: "^/x$"}),
	}
	runMatchCases(t, []matchCase{
		{name: "exact", routes: tree, in: req("h", "/a"), wantID: "exact"},
		{name: "exact trailing slash is distinct", routes: tree, in: req("h", "/a/"), wantID: "exact-slash"},
		{name: "exact root", routes: tree, in: req("h", "/"), wantID: "root"},
		{name: "exact no match", routes: tree, in: req("h", "/b")},
		{name: "empty path", routes: tree, in: req("h", "")},
		{
			name: "template params", routes: tree, in: req("h", "/users/42/orders/7"), wantID: "user",
			wantParams: Params{{"id", "42"}, {"order", "7"}},
		},
		{name: "template empty segment", routes: tree, in: req("h", "/users//orders/7")},
		{name: "template trailing slash", routes: tree, in: req("h", "/users/1/orders/7/")},
		{name: "template too short", routes: tree, in: req("h", "/users/1/orders")},
		{
			name: "catch-all empty rest", routes: tree, in: req("h", "/files/"), wantID: "files",
			wantParams: Params{{"path", ""}},
		},
		{
			name: "catch-all deep rest", routes: tree, in: req("h", "/files/a//b/"), wantID: "files",
			wantParams: Params{{"path", "a//b/"}},
		},
		{name: "catch-all needs the slash", routes: tree, in: req("h", "/files")},
		{
			name: "percent-encoding is matched as given",
			routes: []*config.Route{
				rt("enc", config.Match{Path: "/a%2Fb"}),
				rt("tmpl", config.Match{Path: "/a/{x}"}),
			},
			in:     req("h", "/a%2Fb"),
			wantID: "enc",
		},
		{
			name:       "param values are not decoded",
			routes:     []*config.Route{rt("tmpl", config.Match{Path: "/a/{x}"})},
			in:         req("h", "/a/%41%2F"),
			wantID:     "tmpl",
			wantParams: Params{{"x", "%41%2F"}},
		},
		{name: "prefix dir", routes: prefixes, in: req("h", "/api/x"), wantID: "dir"},
		{name: "prefix dir itself", routes: prefixes, in: req("h", "/api/"), wantID: "dir"},
		{name: "prefix dir without slash", routes: prefixes, in: req("h", "/api")},
		{name: "prefix segment itself", routes: prefixes, in: req("h", "/v1"), wantID: "seg"},
		{name: "prefix segment deeper", routes: prefixes, in: req("h", "/v1/x/y"), wantID: "seg"},
		{name: "prefix segment boundary", routes: prefixes, in: req("h", "/v1x")},
		{
			name:   "prefix root matches all",
			routes: []*config.Route{rt("all", config.Match{PathPrefix: "/"})},
			in:     req("h", "/deep/er/"),
			wantID: "all",
		},
		{
			name:   "prefix with an empty segment",
			routes: []*config.Route{rt("empty-seg", config.Match{PathPrefix: "//"})},
			in:     req("h", "//x"),
			wantID: "empty-seg",
		},
		{
			name:   "prefix with an empty segment needs it",
			routes: []*config.Route{rt("empty-seg", config.Match{PathPrefix: "//"})},
			in:     req("h", "/x"),
		},
		{name: "regex unanchored", routes: regexes, in: req("h", "/x/v2/y"), wantID: "unanchored"},
		{name: "regex anchored", routes: regexes, in: req("h", "/x"), wantID: "anchored"},
		{name: "regex anchored no match", routes: regexes, in: req("h", "/x/")},
		{
			name: "asterisk path only reaches regex and any",
			routes: []*config.Route{
				rt("prefix", config.Match{PathPrefix: "/"}),
				rt("star", config.Match{PathRegex: `^\*$`}),
			},
			in:     Input{Method: "OPTIONS", Path: "*"},
			wantID: "star",
		},
	})
}

func TestMatchConditions(t *testing.T) {
	methods := []*config.Route{
		rt("get-user", config.Match{Path: "/users/{id}", Methods: []string{"GET", "HEAD"}}),
		rt("users", config.Match{PathPrefix: "/users"}),
	}
	hdr := []*config.Route{
		rt("canary", config.Match{Headers: []config.ValueMatch{{Name: "X-Canary", Exact: ptr("1")}}}),
		rt("mobile", config.Match{Headers: []config.ValueMatch{{Name: "User-Agent", Regex: "(?i)mobile"}}}),
		rt("anon", config.Match{Headers: []config.ValueMatch{{Name: "Authorization", Present: ptr(false)}}}),
		rt("authed", config.Match{Headers: []config.ValueMatch{{Name: "authorization", Present: ptr(true)}}}),
	}
	query := []*config.Route{
		rt("v2", config.Match{Query: []config.ValueMatch{{Name: "v", Exact: ptr("2")}}}),
		rt("debug", config.Match{Query: []config.ValueMatch{{Name: "debug", Present: ptr(true)}}}),
		rt("nocache", config.Match{Query: []config.ValueMatch{{Name: "cache", Present: ptr(false)}}}),
	}
	withHeaders := func(in Input, h map[string]string) Input { in.Header = headers(h); return in }
	post := req("h", "/users/1")
	post.Method = "POST"
	runMatchCases(t, []matchCase{
		{name: "method allowed", routes: methods, in: req("h", "/users/1"), wantID: "get-user", wantParams: Params{{"id", "1"}}},
		{name: "method falls back to another route", routes: methods, in: post, wantID: "users"},
		{name: "methods are case-sensitive", routes: methods, in: Input{Method: "get", Path: "/users/1"}, wantID: "users"},
		{name: "header exact", routes: hdr, in: withHeaders(req("h", "/"), map[string]string{"x-canary": "1"}), wantID: "canary"},
		{name: "header exact mismatch", routes: hdr, in: withHeaders(req("h", "/"), map[string]string{"X-Canary": "2", "Authorization": "b"}), wantID: "authed"},
		{name: "header regex", routes: hdr, in: withHeaders(req("h", "/"), map[string]string{"User-Agent": "x Mobile y", "Authorization": "b"}), wantID: "mobile"},
		{name: "header present false", routes: hdr, in: withHeaders(req("h", "/"), map[string]string{"User-Agent": "desk"}), wantID: "anon"},
		{name: "nil header func means absent", routes: hdr, in: req("h", "/"), wantID: "anon"},
		{
			name:   "header present but empty counts as present",
			routes: hdr[2:],
			in:     withHeaders(req("h", "/"), map[string]string{"Authorization": ""}),
			wantID: "authed",
		},
		{name: "query exact", routes: query, in: req("h", "/?v=2&cache=1"), wantID: "v2"},
		{name: "query first value", routes: query, in: req("h", "/?v=3&v=2&cache=1")},
		{name: "query decoded", routes: query, in: req("h", "/?%76=%32&cache"), wantID: "v2"},
		{name: "query present without value", routes: query, in: req("h", "/?debug&cache=1"), wantID: "debug"},
		{name: "query absent", routes: query, in: req("h", "/?v=3"), wantID: "nocache"},
		{name: "query semicolon pair skipped", routes: query, in: req("h", "/?v=2;x=1"), wantID: "nocache"},
		{name: "query bad escape skipped", routes: query, in: req("h", "/?v=%zz&debug=1"), wantID: "debug"},
		{name: "query no match", routes: query, in: req("h", "/?cache=1")},
	})
}

func TestMatchPrecedence(t *testing.T) {
	runMatchCases(t, []matchCase{
		{
			name: "priority beats every specificity",
			routes: []*config.Route{
				rt("exact", config.Match{Hosts: []string{"a.com"}, Path: "/x", Methods: []string{"GET"}}),
				prio("catch", 1, config.Match{}),
			},
			in: req("a.com", "/x"), wantID: "catch",
		},
		{
			name: "negative priority loses to default",
			routes: []*config.Route{
				prio("exact", -1, config.Match{Path: "/x"}),
				rt("catch", config.Match{}),
			},
			in: req("a.com", "/x"), wantID: "catch",
		},
		{
			name: "exact host beats wildcard with better path",
			routes: []*config.Route{
				rt("wild", config.Match{Hosts: []string{"*.a.com"}, Path: "/x"}),
				rt("exact", config.Match{Hosts: []string{"b.a.com"}}),
			},
			in: req("b.a.com", "/x"), wantID: "exact",
		},
		{
			name: "longer wildcard suffix wins",
			routes: []*config.Route{
				rt("short", config.Match{Hosts: []string{"*.com"}, Path: "/x"}),
				rt("long", config.Match{Hosts: []string{"*.a.com"}}),
			},
			in: req("b.a.com", "/x"), wantID: "long",
		},
		{
			name: "wildcard beats any host",
			routes: []*config.Route{
				rt("any", config.Match{Path: "/x"}),
				rt("wild", config.Match{Hosts: []string{"*.com"}}),
			},
			in: req("a.com", "/x"), wantID: "wild",
		},
		{
			name: "multi-host route ranks by the host that matched",
			routes: []*config.Route{
				rt("wild", config.Match{Hosts: []string{"*.a.com"}, Path: "/x"}),
				rt("multi", config.Match{Hosts: []string{"*.z.com", "b.a.com"}}),
			},
			in: req("b.a.com", "/x"), wantID: "multi",
		},
		{
			name: "exact path beats template",
			routes: []*config.Route{
				rt("tmpl", config.Match{Path: "/u/{id}"}),
				rt("exact", config.Match{Path: "/u/me"}),
			},
			in: req("h", "/u/me"), wantID: "exact",
		},
		{
			name: "template with fewer params wins",
			routes: []*config.Route{
				rt("two", config.Match{Path: "/{a}/{b}"}),
				rt("one", config.Match{Path: "/{a}/x"}),
			},
			in: req("h", "/u/x"), wantID: "one", wantParams: Params{{"a", "u"}},
		},
		{
			name: "template with longer literal prefix wins",
			routes: []*config.Route{
				rt("short", config.Match{Path: "/{a}/x/y"}),
				rt("long", config.Match{Path: "/u/x/{b}"}),
			},
			in: req("h", "/u/x/y"), wantID: "long", wantParams: Params{{"b", "y"}},
		},
		{
			name: "catch-all counts as a param",
			routes: []*config.Route{
				rt("rest", config.Match{Path: "/u/{rest...}"}),
				rt("two", config.Match{Path: "/u/{a}/{b}"}),
			},
			in: req("h", "/u/1/2"), wantID: "rest", wantParams: Params{{"rest", "1/2"}},
		},
		{
			name: "template beats prefix",
			routes: []*config.Route{
				rt("prefix", config.Match{PathPrefix: "/u/1"}),
				rt("tmpl", config.Match{Path: "/{a}/{b}"}),
			},
			in: req("h", "/u/1"), wantID: "tmpl", wantParams: Params{{"a", "u"}, {"b", "1"}},
		},
		{
			name: "longer prefix wins",
			routes: []*config.Route{
				rt("short", config.Match{PathPrefix: "/api/"}),
				rt("long", config.Match{PathPrefix: "/api/v1"}),
				rt("longer-no-match", config.Match{PathPrefix: "/api/v1x"}),
			},
			in: req("h", "/api/v1/x"), wantID: "long",
		},
		{
			name: "prefix beats regex",
			routes: []*config.Route{
				rt("regex", config.Match{PathRegex: "^/api/v1/x$"}),
				rt("prefix", config.Match{PathPrefix: "/"}),
			},
			in: req("h", "/api/v1/x"), wantID: "prefix",
		},
		{
			name: "regex beats none",
			routes: []*config.Route{
				rt("none", config.Match{Methods: []string{"GET"}, Headers: []config.ValueMatch{{Name: "A", Present: ptr(false)}}}),
				rt("regex", config.Match{PathRegex: "x"}),
			},
			in: req("h", "/x"), wantID: "regex",
		},
		{
			name: "more condition kinds win",
			routes: []*config.Route{
				rt("methods", config.Match{Path: "/x", Methods: []string{"GET", "POST"}}),
				rt("methods+query", config.Match{Path: "/x", Methods: []string{"GET"}, Query: []config.ValueMatch{{Name: "q", Present: ptr(true)}}}),
			},
			in: req("h", "/x?q"), wantID: "methods+query",
		},
		{
			name: "more conditions of one kind do not count",
			routes: []*config.Route{
				rt("one", config.Match{Path: "/x", Headers: []config.ValueMatch{{Name: "A", Present: ptr(false)}}}),
				rt("two", config.Match{Path: "/x", Headers: []config.ValueMatch{{Name: "A", Present: ptr(false)}, {Name: "B", Present: ptr(false)}}}),
			},
			in: req("h", "/x"), wantID: "one",
		},
		{
			name: "earlier route wins a full tie",
			routes: []*config.Route{
				rt("first", config.Match{PathPrefix: "/x"}),
				rt("second", config.Match{PathPrefix: "/x"}),
			},
			in: req("h", "/x"), wantID: "first",
		},
		{
			name: "losing specific route filtered out by method",
			routes: []*config.Route{
				rt("exact-post", config.Match{Path: "/x", Methods: []string{"POST"}}),
				rt("tmpl-get", config.Match{Path: "/{a}", Methods: []string{"GET"}}),
				rt("regex", config.Match{PathRegex: "/"}),
			},
			in: req("h", "/x"), wantID: "tmpl-get", wantParams: Params{{"a", "x"}},
		},
	})
}

func TestParamsGet(t *testing.T) {
	ps := Params{{"a", "1"}, {"b", "2"}}
	tests := []struct {
		name, key, want string
	}{
		{name: "first", key: "a", want: "1"},
		{name: "second", key: "b", want: "2"},
		{name: "missing", key: "c", want: ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := ps.Get(tc.key); got != tc.want {
				t.Errorf("Get(%q) = %q, want %q", tc.key, got, tc.want)
			}
		})
	}
}

func TestLen(t *testing.T) {
	tab, err := Compile([]*config.Route{rt("a", config.Match{}), rt("b", config.Match{Hosts: []string{"x", "y"}})})
	if err != nil {
		t.Fatal(err)
	}
	if tab.Len() != 2 {
		t.Errorf("Len() = %d, want 2", tab.Len())
	}
	empty, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, ok := empty.Match(&Input{Path: "/"}); ok || empty.Len() != 0 {
		t.Errorf("empty table matched or has Len %d", empty.Len())
	}
}

func TestMatchAllocs(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("allocation counts are unstable under the race detector (scripts/test.sh runs this without it)")
	}
	tab, err := Compile([]*config.Route{
		rt("exact", config.Match{Hosts: []string{"a.example.com"}, Path: "/x", Methods: []string{"GET"}}),
		rt("tmpl", config.Match{Hosts: []string{"*.example.com"}, Path: "/u/{id}"}),
		rt("regex", config.Match{PathRegex: `\.php$`}),
		rt("hdr", config.Match{Path: "/h", Headers: []config.ValueMatch{{Name: "A", Present: ptr(false)}}}),
	})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   Input
		want float64
	}{
		{name: "exact hit", in: req("A.Example.com:443", "/x"), want: 0},
		{name: "header condition", in: req("b.com", "/h"), want: 0},
		{name: "regex hit", in: req("b.com", "/a.php"), want: 0},
		{name: "miss", in: req("b.com", "/nothing"), want: 0},
		{name: "template hit allocates its params", in: req("b.example.com", "/u/1"), want: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := testing.AllocsPerRun(100, func() { tab.Match(&tc.in) }); got != tc.want {
				t.Errorf("Match allocates %v times, want %v", got, tc.want)
			}
		})
	}
}
