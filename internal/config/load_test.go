package config

import (
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// splitErrors returns the problems joined in err.
func splitErrors(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	if err == nil {
		return nil
	}
	return []error{err}
}

// wants returns the "# want: substring" lines at the top of a bad config.
func wants(data []byte) []string {
	var out []string
	for line := range strings.Lines(string(data)) {
		w, ok := strings.CutPrefix(line, "# want: ")
		if !ok {
			break
		}
		out = append(out, strings.TrimRight(w, "\n"))
	}
	return out
}

func TestParseGoodFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.good.yaml")
	if err != nil || len(files) < 3 {
		t.Fatalf("want at least 3 good files, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			if c.File != f || len(c.Hash) != 64 {
				t.Errorf("File = %q, Hash = %q; want %q and a sha256 hex", c.File, c.Hash, f)
			}
			if err := c.Validate(); err != nil {
				t.Errorf("Validate after Load: %v", err)
			}
		})
	}
}

func TestParseBadFiles(t *testing.T) {
	files, err := filepath.Glob("testdata/*.bad.yaml")
	if err != nil || len(files) < 14 {
		t.Fatalf("want at least 14 bad files, got %d (%v)", len(files), err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			want := wants(data)
			if len(want) == 0 {
				t.Fatal("no \"# want:\" lines")
			}
			name := filepath.Base(f)
			c, err := Parse(name, data)
			if err == nil {
				t.Fatalf("Parse succeeded (%+v); want errors %q", c, want)
			}
			got := splitErrors(err)
			located := regexp.MustCompile(`^` + regexp.QuoteMeta(name) + `:[1-9][0-9]*: `)
			for _, e := range got {
				if !located.MatchString(e.Error()) {
					t.Errorf("error %q does not start with %q and a line number", e, name)
				}
				var fe *FieldError
				if !errors.As(e, &fe) {
					t.Errorf("error %q is %T, not *FieldError", e, e)
				}
			}
			for _, w := range want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("missing error containing %q", w)
				}
			}
			if len(got) != len(want) {
				t.Errorf("got %d errors, want %d", len(got), len(want))
			}
			if t.Failed() {
				t.Logf("errors:\n%v", err)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	data := []byte(`listeners:
  - address: nope
upstreams:
  - id: app
    targets: [{address: "10.0.0.5:8080", weight: -2}]
    keepalive: {idle_timeout: 0s, safety_fraction: 2}
routes:
  - {id: a, upstream: missing, match: {path: x}}
  - {id: a, upstream: app, rewrite: {host: nope}}
log: {level: loud}
`)
	_, err := Parse("multi.yaml", data)
	want := []string{
		`multi.yaml:2: listeners[0].address: invalid address "nope"`,
		`multi.yaml:5: upstreams[0].targets[0].weight: must be between 1 and`,
		`multi.yaml:6: upstreams[0].keepalive.idle_timeout: 0 is not allowed`,
		`multi.yaml:6: upstreams[0].keepalive.safety_fraction: must be between 0 and 1`,
		`multi.yaml:8: routes[0].upstream: unknown upstream "missing"`,
		`multi.yaml:8: routes[0].match.path: invalid path "x"`,
		`multi.yaml:9: routes[1].id: duplicate route id "a"`,
		`multi.yaml:9: routes[1].rewrite.host: unknown host mode "nope"`,
		`multi.yaml:10: log.level: unknown level "loud"`,
	}
	if got := splitErrors(err); len(got) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(got), len(want), err)
	}
	for _, w := range want {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("missing %q in:\n%v", w, err)
		}
	}
	// Errors come sorted by line.
	last := 0
	for _, m := range regexp.MustCompile(`(?m)^multi\.yaml:(\d+):`).FindAllStringSubmatch(err.Error(), -1) {
		n, _ := strconv.Atoi(m[1])
		if n < last {
			t.Errorf("errors not sorted by line:\n%v", err)
		}
		last = n
	}
}

func TestParseEdgeInputs(t *testing.T) {
	tests := []struct {
		name string
		data string
		want string
	}{
		{"empty", "", "e.yaml:1: empty configuration"},
		{"whitespace", "  \n\n", "e.yaml:1: empty configuration"},
		{"document marker only", "---\n", "e.yaml:1: empty configuration"},
		{"null", "~\n", "e.yaml:1: empty configuration"},
		{"list", "[]\n", "e.yaml:1: the top level must be a mapping"},
		{"scalar", "hello\n", "e.yaml:1: the top level must be a mapping with listeners, upstreams and routes, not a string"},
		{"two documents", "a: 1\n---\nb: 2\n", "e.yaml:2: a second YAML document"},
		{"tab indentation", "listeners:\n\t- address: x\n", "e.yaml:2: invalid YAML: a tab in the indentation; YAML allows only spaces"},
		{"tab after the line the parser names", "listeners:\n  - address: x\n\tname: y\n", "e.yaml:3: invalid YAML: a tab in the indentation"},
		{"unquoted wildcard in a flow list", "routes:\n  - match:\n      hosts: [*.example.com]\n", `e.yaml:3: invalid YAML: a value starts with "*", which YAML reads as an alias: quote values that start with *`},
		{"unquoted wildcard in a block list", "routes:\n  - match:\n      hosts:\n        - *.example.com # all\n", `e.yaml:4: invalid YAML: a value starts with "*"`},
		{"empty mapping", "{}\n", "e.yaml:1: listeners: at least one listener is required"},
		{"unknown top-level key", "listener: []\n", `e.yaml:1: listener: unknown field "listener" (did you mean "listeners"?)`},
		{"no suggestion lists fields", "zzz: 1\n", `unknown field "zzz" (valid: admin, cluster, consumers, errors, listeners, log, plugins, routes, shutdown_grace, tracing, upstreams)`},
		{"wrong type for list", "listeners: 5\n", "e.yaml:1: listeners: want a list, got an integer \"5\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("e.yaml", []byte(tc.data))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Parse(%q) = %v, want error containing %q", tc.data, err, tc.want)
			}
		})
	}
}

func TestParseDefaults(t *testing.T) {
	c, err := Parse("min.yaml", []byte(`listeners: [{address: ":8080"}]
upstreams: [{id: app, targets: [{address: "h:1"}]}]
routes: [{id: r, upstream: app, match: {hosts: [API.Example.COM], methods: [get]}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	l, u, r := c.Listeners[0], c.Upstreams[0], c.Routes[0]
	k := u.Keepalive
	tests := []struct {
		name      string
		got, want any
	}{
		{"listener name", l.Name, ":8080"},
		{"read_header_timeout", l.ReadHeaderTimeout.D(), 10 * time.Second},
		{"read_timeout", l.ReadTimeout.D(), time.Minute},
		{"write_timeout", l.WriteTimeout.D(), time.Minute},
		{"idle_timeout", l.IdleTimeout.D(), time.Minute},
		{"max_header_bytes", l.MaxHeaderBytes, 65536},
		{"max_headers", l.MaxHeaders, 100},
		{"max_body_bytes", l.MaxBodyBytes, int64(0)},
		{"weight", u.Targets[0].Weight, 1},
		{"keepalive enabled", *k.Enabled, true},
		{"keepalive idle_timeout", k.IdleTimeout.D(), time.Minute},
		{"max_idle", *k.MaxIdle, 64},
		{"max_conns", k.MaxConns, 0},
		{"max_pending", *k.MaxPending, 1024},
		{"queue_timeout", k.QueueTimeout.D(), 5 * time.Second},
		{"max_requests", k.MaxRequests, 0},
		{"max_lifetime", k.MaxLifetime.D(), time.Duration(0)},
		{"learn", *k.Learn, true},
		{"safety_fraction", *k.SafetyFraction, 0.85},
		{"unsafe_max_idle", k.UnsafeMaxIdle.D(), 500 * time.Millisecond},
		{"connect", u.Timeouts.Connect.D(), 5 * time.Second},
		{"upstream read", u.Timeouts.Read.D(), time.Minute},
		{"upstream write", u.Timeouts.Write.D(), time.Minute},
		{"route timeouts stay 0 (inherit)", r.Timeouts, Timeouts{}},
		{"rewrite host", r.Rewrite.Host, "client"},
		{"hosts lowercased", r.Match.Hosts[0], "api.example.com"},
		{"methods uppercased", r.Match.Methods[0], "GET"},
		{"log level", c.Log.Level, "info"},
		{"log access", c.Log.Access, "stdout"},
		{"shutdown_grace", c.ShutdownGrace.D(), 30 * time.Second},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %v, want %v", tc.got, tc.want)
			}
		})
	}
}

func TestParseExplicitValuesKept(t *testing.T) {
	c, err := Parse("x.yaml", []byte(`listeners: [{address: ":8080", name: pub}]
upstreams: [{id: app, targets: [{address: "h:1"}], keepalive: {enabled: false, learn: false, unsafe_max_idle: 0s, max_pending: 0}}]
routes: [{id: r, upstream: app}]
shutdown_grace: 0s
`))
	if err != nil {
		t.Fatal(err)
	}
	k := c.Upstreams[0].Keepalive
	if k.IsEnabled() || k.LearnEnabled() || k.UnsafeMaxIdleValue() != 0 || k.MaxPendingValue() != 0 {
		t.Errorf("explicit false/0 overwritten by defaults: %+v", k)
	}
	if c.ShutdownGraceValue() != 0 || c.Listeners[0].Name != "pub" {
		t.Errorf("shutdown_grace = %v, name = %q", c.ShutdownGraceValue(), c.Listeners[0].Name)
	}
}

func TestParseHashAndFile(t *testing.T) {
	data := []byte("listeners: [{address: \":1\"}]\nupstreams: [{id: a, targets: [{address: \"h:1\"}]}]\nroutes: [{id: r, upstream: a}]\n")
	c1, err1 := Parse("a.yaml", data)
	c2, err2 := Parse("b.yaml", append(data, '\n'))
	if err1 != nil || err2 != nil {
		t.Fatal(err1, err2)
	}
	const want = "a.yaml"
	if c1.File != want || c1.Hash == c2.Hash || len(c1.Hash) != 64 {
		t.Errorf("File %q Hash %q / %q", c1.File, c1.Hash, c2.Hash)
	}
}

func TestLoadMissingFile(t *testing.T) {
	_, err := Load(filepath.Join(t.TempDir(), "nope.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load missing file: got %v, want os.ErrNotExist", err)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob("testdata/*.yaml")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add(defaultYAML)
	f.Add([]byte("a: &x [*x]"))
	f.Add([]byte("<<: {listeners: []}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("fuzz.yaml", data)
		if (c == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v", c != nil, err)
		}
		if err != nil {
			for _, e := range splitErrors(err) {
				if !strings.HasPrefix(e.Error(), "fuzz.yaml") {
					t.Fatalf("error without file name: %q", e)
				}
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("Validate after successful Parse: %v", err)
		}
	})
}

// TestParseNullRouteItem: a null item in routes ("- ~" or a bare "-") is dropped, as the
// decoder drops null items of the lists of values (routes are pointers since configs share
// them: a nil one would reach every reader).
func TestParseNullRouteItem(t *testing.T) {
	c, err := Parse("t.yaml", []byte("listeners: [{address: \":8080\"}]\n"+
		"upstreams: [{id: app, targets: [{address: \"10.0.0.5:8080\"}]}, ~]\n"+
		"routes:\n  - {id: a, upstream: app}\n  -\n  - ~\n  - {id: b, upstream: app, match: {path: /b}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(c.Upstreams) != 1 || len(c.Routes) != 2 || c.Routes[0] == nil || c.Routes[1] == nil || c.Routes[1].ID != "b" {
		t.Fatalf("upstreams %d, routes %v: want the null items dropped", len(c.Upstreams), c.Routes)
	}
}
