package router

import (
	"testing"

	"sluice/internal/config"
)

// fuzzBase is a route set with every path kind, hosts and conditions, to which FuzzMatch
// adds one route built from the fuzzer's pattern.
func fuzzBase() []*config.Route {
	return []*config.Route{
		rt("exact", config.Match{Path: "/a/b"}),
		rt("tmpl", config.Match{Hosts: []string{"*.example.com"}, Path: "/u/{id}/x/{rest...}"}),
		rt("prefix", config.Match{PathPrefix: "/a"}),
		rt("dir", config.Match{Hosts: []string{"example.com"}, PathPrefix: "/s/"}),
		rt("regex", config.Match{PathRegex: `\.php$`, Methods: []string{"POST"}}),
		rt("hdr", config.Match{Path: "/{x}", Headers: []config.ValueMatch{{Name: "X-A", Regex: "^v"}}}),
		rt("query", config.Match{Query: []config.ValueMatch{{Name: "q", Exact: ptr("1")}}}),
	}
}

// FuzzMatch checks that Compile and Match never panic and that Match agrees with the
// linear reference for any request and any extra route that compiles.
func FuzzMatch(f *testing.F) {
	f.Add(uint8(0), "/a/{b}", "GET", "a.example.com:80", "/a/1", "q=1", "v1")
	f.Add(uint8(1), "/a/", "POST", "[::1]:8080", "/a/x.php", "", "")
	f.Add(uint8(2), "^/(a|b)+$", "GET", "EXAMPLE.com", "/s/", "q=%zz&q=1", "x")
	f.Add(uint8(3), "*.Example.COM", "HEAD", "x.y.example.com.", "/u/1/x/", "q;=1", "")
	f.Add(uint8(4), "/{a...}", "GET", "", "*", "", "")
	f.Fuzz(func(t *testing.T, kind uint8, pattern, method, host, path, query, hval string) {
		routes := fuzzBase()
		extra := rt("fuzz", config.Match{})
		switch kind % 5 {
		case 0:
			extra.Match.Path = pattern
		case 1:
			extra.Match.PathPrefix = pattern
		case 2:
			extra.Match.PathRegex = pattern
		case 3:
			extra.Match.Hosts = []string{pattern}
		case 4:
			extra.Match.Headers = []config.ValueMatch{{Name: "X-A", Exact: &pattern}}
		}
		routes = append(routes, extra)
		tab, err := Compile(routes)
		if err != nil {
			routes = routes[:len(routes)-1]
			if tab, err = Compile(routes); err != nil {
				t.Fatalf("base routes: %v", err)
			}
		}
		in := Input{Method: method, Host: host, Path: path, Query: query}
		if hval != "" {
			in.Header = headers(map[string]string{"x-a": hval})
		}
		checkAgainstReference(t, tab, routes, &in)
		_ = tab.Dump()
	})
}
