package router

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"regexp/syntax"
	"strings"
	"testing"

	"sluice/internal/config"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden files")

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name      string
		route     *config.Route
		wantField string
		wantIs    error  // nil: not checked
		wantText  string // substring of the message
	}{
		{name: "bad path regex", route: rt("r", config.Match{PathRegex: "a("}), wantField: "match.path_regex", wantText: "missing closing )"},
		{name: "bad header regex", route: rt("r", config.Match{Headers: []config.ValueMatch{{Name: "A", Present: ptr(true)}, {Name: "B", Regex: "["}}}), wantField: "match.headers[1]", wantText: "missing closing ]"},
		{name: "bad query regex", route: rt("r", config.Match{Query: []config.ValueMatch{{Name: "q", Regex: "*"}}}), wantField: "match.query[0]", wantText: "missing argument"},
		{name: "condition without test", route: rt("r", config.Match{Headers: []config.ValueMatch{{Name: "A"}}}), wantField: "match.headers[0]", wantIs: ErrInvalidCondition},
		{name: "condition with two tests", route: rt("r", config.Match{Query: []config.ValueMatch{{Name: "q", Exact: ptr(""), Present: ptr(true)}}}), wantField: "match.query[0]", wantIs: ErrInvalidCondition},
		{name: "condition without name", route: rt("r", config.Match{Headers: []config.ValueMatch{{Exact: ptr("x")}}}), wantField: "match.headers[0]", wantIs: ErrInvalidCondition},
		{name: "two path kinds", route: rt("r", config.Match{Path: "/a", PathPrefix: "/a"}), wantField: "match.path", wantIs: ErrInvalidPath},
		{name: "relative path", route: rt("r", config.Match{Path: "a"}), wantField: "match.path", wantIs: ErrInvalidPath},
		{name: "relative prefix", route: rt("r", config.Match{PathPrefix: "api/"}), wantField: "match.path_prefix", wantIs: ErrInvalidPath},
		{name: "param inside a segment", route: rt("r", config.Match{Path: "/a{b}"}), wantField: "match.path", wantIs: ErrInvalidPath, wantText: "whole segment"},
		{name: "unbalanced brace", route: rt("r", config.Match{Path: "/{b"}), wantField: "match.path", wantIs: ErrInvalidPath},
		{name: "empty param name", route: rt("r", config.Match{Path: "/{}"}), wantField: "match.path", wantIs: ErrInvalidPath, wantText: "empty parameter name"},
		{name: "empty catch-all name", route: rt("r", config.Match{Path: "/{...}"}), wantField: "match.path", wantIs: ErrInvalidPath},
		{name: "bad param name", route: rt("r", config.Match{Path: "/{a-b}"}), wantField: "match.path", wantIs: ErrInvalidPath},
		{name: "catch-all not last", route: rt("r", config.Match{Path: "/{a...}/b"}), wantField: "match.path", wantIs: ErrInvalidPath, wantText: "last segment"},
		{name: "duplicate param", route: rt("r", config.Match{Path: "/{a}/{a}"}), wantField: "match.path", wantIs: ErrInvalidPath, wantText: "duplicate"},
		{name: "empty host", route: rt("r", config.Match{Hosts: []string{""}}), wantField: "match.hosts", wantIs: ErrInvalidHost},
		{name: "host with port", route: rt("r", config.Match{Hosts: []string{"a.com:80"}}), wantField: "match.hosts", wantIs: ErrInvalidHost, wantText: "port"},
		{name: "bracketed host with port", route: rt("r", config.Match{Hosts: []string{"[::1]:80"}}), wantField: "match.hosts", wantIs: ErrInvalidHost},
		{name: "bare star", route: rt("r", config.Match{Hosts: []string{"*"}}), wantField: "match.hosts", wantIs: ErrInvalidHost},
		{name: "star without suffix", route: rt("r", config.Match{Hosts: []string{"*."}}), wantField: "match.hosts", wantIs: ErrInvalidHost},
		{name: "inner star", route: rt("r", config.Match{Hosts: []string{"a.*.com"}}), wantField: "match.hosts", wantIs: ErrInvalidHost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.route.ID = "route-" + strings.ReplaceAll(tc.name, " ", "-")
			routes := []*config.Route{rt("ok", config.Match{Path: "/ok"}), tc.route}
			tab, err := Compile(routes)
			if err == nil {
				t.Fatalf("Compile succeeded with %s", tab.Dump())
			}
			var re *RouteError
			if !errors.As(err, &re) {
				t.Fatalf("error %v is not a *RouteError", err)
			}
			if re.Index != 1 || re.ID != tc.route.ID || re.Field != tc.wantField {
				t.Errorf("RouteError{Index: %d, ID: %q, Field: %q}, want {1, %q, %q}", re.Index, re.ID, re.Field, tc.route.ID, tc.wantField)
			}
			if !strings.Contains(err.Error(), tc.route.ID) {
				t.Errorf("error %q does not name route %q", err, tc.route.ID)
			}
			if tc.wantIs != nil && !errors.Is(err, tc.wantIs) {
				t.Errorf("error %q is not %v", err, tc.wantIs)
			}
			if !strings.Contains(err.Error(), tc.wantText) {
				t.Errorf("error %q does not contain %q", err, tc.wantText)
			}
		})
	}
}

func TestCompileJoinsErrors(t *testing.T) {
	_, err := Compile([]*config.Route{
		rt("bad1", config.Match{PathRegex: "("}),
		rt("good", config.Match{}),
		rt("bad2", config.Match{Hosts: []string{"*"}}),
	})
	var se *syntax.Error
	if !errors.As(err, &se) || !errors.Is(err, ErrInvalidHost) {
		t.Fatalf("error %v does not hold both a regexp and a host error", err)
	}
	for _, id := range []string{`"bad1"`, `"bad2"`} {
		if !strings.Contains(err.Error(), id) {
			t.Errorf("error %q does not name %s", err, id)
		}
	}
}

func TestCompileAccepts(t *testing.T) {
	tests := []struct {
		name  string
		match config.Match
	}{
		{name: "empty match", match: config.Match{}},
		{name: "literal braces in prefix", match: config.Match{PathPrefix: "/{x}"}},
		{name: "bracketed ipv6", match: config.Match{Hosts: []string{"[::1]"}}},
		{name: "bare ipv6", match: config.Match{Hosts: []string{"fe80::1"}}},
		{name: "duplicate hosts", match: config.Match{Hosts: []string{"a.com", "A.com"}}},
		{name: "catch-all at root", match: config.Match{Path: "/{all...}"}},
		{name: "empty segments", match: config.Match{Path: "//a//{b}"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Compile([]*config.Route{rt("r", tc.match)}); err != nil {
				t.Errorf("Compile: %v", err)
			}
		})
	}
}

func TestDumpGolden(t *testing.T) {
	routes := []*config.Route{
		rt("health", config.Match{Path: "/healthz", Methods: []string{"GET", "HEAD"}}),
		rt("users", config.Match{Hosts: []string{"api.example.com"}, Path: "/users/{id}"}),
		rt("orders", config.Match{Hosts: []string{"api.example.com"}, Path: "/users/{id}/orders/{order}"}),
		rt("me", config.Match{Hosts: []string{"API.example.com"}, Path: "/users/me"}),
		rt("files", config.Match{Hosts: []string{"*.example.com"}, Path: "/files/{path...}"}),
		rt("api-dir", config.Match{Hosts: []string{"*.example.com", "example.org"}, PathPrefix: "/api/"}),
		rt("v1", config.Match{PathPrefix: "/v1"}),
		rt("root", config.Match{PathPrefix: "/"}),
		prio("legacy", 10, config.Match{PathRegex: `^/legacy/.*\.php$`}),
		rt("canary", config.Match{Headers: []config.ValueMatch{{Name: "X-Canary", Exact: ptr("1")}}, Query: []config.ValueMatch{{Name: "v", Present: ptr(true)}}}),
		rt("deep", config.Match{Hosts: []string{"*.a.example.com"}, Path: "/a/b/c"}),
	}
	tab, err := Compile(routes)
	if err != nil {
		t.Fatal(err)
	}
	got := tab.Dump()
	if again := tab.Dump(); again != got {
		t.Fatalf("Dump is not deterministic:\n%s\n---\n%s", got, again)
	}
	golden := filepath.Join("testdata", "dump.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("Dump() differs from %s (run go test -update to accept):\ngot:\n%s\nwant:\n%s", golden, got, want)
	}
}
