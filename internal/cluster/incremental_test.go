package cluster

import (
	"fmt"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"

	"sluice/internal/config"
)

// TestIncrementalMatchesWhole applies a sequence of changes, valid and invalid, to a state
// of 30 routes and 3 upstreams, and checks after each that the change validated object by
// object agrees with the whole config validated by Assemble: an accepted change gives the
// same config (same upstreams and routes, same order), and a change the whole validation
// refuses is never accepted object by object (it goes to the whole validation, whose errors
// are the ones reported). It also checks that the valid single-route changes were taken
// object by object, not all sent to the whole validation.
func TestIncrementalMatchesWhole(t *testing.T) {
	local, err := ReadLocal("node.yaml", []byte("listeners: [{address: \"127.0.0.1:0\"}]\nadmin: {enabled: false}\n"))
	if err != nil {
		t.Fatal(err)
	}
	up := func(id, addr string) string { return fmt.Sprintf(`{"id":%q,"targets":[{"address":%q}]}`, id, addr) }
	route := func(id, path, upstream string) string {
		return fmt.Sprintf(`{"id":%q,"match":{"path_prefix":%q},"upstream":%q}`, id, path, upstream)
	}
	st := NewState()
	rev := int64(1)
	set := func(s *State, rel, v string) {
		rev++
		s.Rev = rev
		if v == "" {
			s.Put(rel, nil)
			return
		}
		s.Put(rel, &Object{Value: []byte(v), ModRev: rev})
	}
	for _, u := range []string{"a", "b", "c"} {
		set(st, "upstreams/"+u, up(u, "127.0.0.1:9"))
	}
	for i := range 30 {
		id := fmt.Sprintf("r%02d", i)
		set(st, "routes/"+id, route(id, "/"+id, []string{"a", "b"}[i%2]))
	}
	cfg, err := Assemble(local, "/s", st)
	if err != nil {
		t.Fatal(err)
	}
	p := &applied{st: st, cfg: cfg, idx: config.NewRouteIndex(cfg)}

	type kv struct{ rel, v string } // v "" deletes
	steps := []struct {
		name  string
		puts  []kv
		valid bool
	}{
		{"a route's prefix changes", []kv{{"routes/r03", route("r03", "/new", "b")}}, true},
		{"a route is added", []kv{{"routes/zz", route("zz", "/zz", "c")}}, true},
		{"a route is added before the others", []kv{{"routes/0first", route("0first", "/first", "a")}}, true},
		{"a route is removed", []kv{{"routes/r05", ""}}, true},
		{"a route names an unknown upstream", []kv{{"routes/r07", route("r07", "/r07", "nope")}}, false},
		{"a route takes another's match", []kv{{"routes/r08", route("r08", "/r09", "a")}}, false},
		{"a new route takes another's match", []kv{{"routes/new", route("new", "/r09", "a")}}, false},
		{"two routes swap their matches in one change", []kv{{"routes/r10", route("r10", "/r11", "a")}, {"routes/r11", route("r11", "/r10", "b")}}, true},
		{"two new routes with the same match", []kv{{"routes/n1", route("n1", "/same", "a")}, {"routes/n2", route("n2", "/same", "a")}}, false},
		{"a route takes the match of a route removed with it", []kv{{"routes/r12", ""}, {"routes/r13", route("r13", "/r12", "a")}}, true},
		{"the match a route left is taken", []kv{{"routes/r14", route("r14", "/r03", "a")}}, true},
		{"an upstream in use is removed", []kv{{"upstreams/a", ""}}, false},
		{"an unused upstream is removed", []kv{{"upstreams/c", ""}, {"routes/zz", ""}}, true},
		{"an upstream changes", []kv{{"upstreams/b", `{"id":"b","targets":[{"address":"127.0.0.1:10"}],"keepalive":{"max_idle":7}}`}}, true},
		{"an upstream and the routes naming it are removed together", []kv{{"upstreams/b", ""}}, false},
		{"an unknown field", []kv{{"routes/r15", `{"id":"r15","match":{"path_prefix":"/r15"},"upstream":"a","colour":"red"}`}}, false},
		{"an explicit zero timeout", []kv{{"routes/r16", `{"id":"r16","match":{"path_prefix":"/r16"},"upstream":"a","timeouts":{"read":"0s"}}`}}, false},
		{"an id that differs from the key", []kv{{"routes/r17", route("other", "/r17", "a")}}, false},
		{"a bad target", []kv{{"upstreams/a", up("a", "no-port")}}, false},
		{"a negative body limit", []kv{{"routes/r18", `{"id":"r18","match":{"path_prefix":"/r18"},"upstream":"a","max_body_bytes":-1}`}}, false},
		{"a bad target weight", []kv{{"upstreams/a", `{"id":"a","targets":[{"address":"127.0.0.1:9","weight":2000000}]}`}}, false},
		{"a route without an upstream", []kv{{"routes/r18", `{"id":"r18","match":{"path_prefix":"/r18"}}`}}, false},
		{"a route with the default id", []kv{{"routes/r19", `{"match":{"path_prefix":"/r19b"},"upstream":"a"}`}}, true},
		{"an upstream is added and a route moves to it", []kv{{"upstreams/d", up("d", "127.0.0.1:11")}, {"routes/r20", route("r20", "/r20", "d")}}, true},
		{"a change of the shared settings goes whole", []kv{{"settings", `{"shutdown_grace":"2s"}`}}, true},
		{"a route after the settings change", []kv{{"routes/r21", route("r21", "/r21x", "a")}}, true},
		{"a consumer goes whole", []kv{{"consumers/web", `{"name":"web","credentials":{"key-auth":{"keys":["k-0123456789abcdef"]}}}`}}, true},
		{"a route after the consumer", []kv{{"routes/r22", route("r22", "/r22x", "a")}}, true},
		{"a consumer with another's name goes whole", []kv{{"consumers/app", `{"name":"web"}`}}, false},
		{"a split route goes whole", []kv{{"upstreams/e", up("e", "127.0.0.1:12")}, {"routes/sp", `{"id":"sp","match":{"path_prefix":"/sp"},"split":{"upstreams":[{"upstream":"a","weight":1},{"upstream":"e","weight":1}]}}`}}, true},
		{"an upstream a split share names gets plugins", []kv{{"upstreams/e", `{"id":"e","targets":[{"address":"127.0.0.1:12"}],"plugins":[{"name":"response-headers","config":{"set":{"X-A":"1"}}}]}`}}, false},
		{"an upstream a split share names is replaced", []kv{{"upstreams/e", up("e", "127.0.0.1:14")}}, true},
		{"an upstream only a split share names is removed", []kv{{"upstreams/e", ""}}, false},
		{"a mirror route goes whole", []kv{{"upstreams/m", up("m", "127.0.0.1:13")}, {"routes/mi", `{"id":"mi","match":{"path_prefix":"/mi"},"upstream":"a","mirror":{"upstream":"m","percent":10}}`}}, true},
		{"an upstream only a mirror names is removed", []kv{{"upstreams/m", ""}}, false},
		{"a grpc-web route on an HTTP/1.1 upstream", []kv{{"routes/gw", `{"id":"gw","match":{"path_prefix":"/gw"},"upstream":"a","grpc_web":true}`}}, false},
		{"a grpc-web route goes whole", []kv{{"upstreams/g", `{"id":"g","protocol":"h2c","targets":[{"address":"127.0.0.1:15"}]}`}, {"routes/gw", `{"id":"gw","match":{"path_prefix":"/gw"},"upstream":"g","grpc_web":true}`}}, true},
		{"the upstream of a grpc-web route turns HTTP/1.1", []kv{{"upstreams/g", up("g", "127.0.0.1:15")}}, false},
	}
	byOne := 0
	for _, s := range steps {
		next := p.st.Clone()
		for _, c := range s.puts {
			set(next, c.rel, c.v)
		}
		whole, werr := Assemble(local, "/s", next)
		inc, ch, ok := incremental(local, "/s", p, next)
		if (werr == nil) != s.valid {
			t.Fatalf("%s: whole validation: %v, want valid=%v", s.name, werr, s.valid)
		}
		if werr != nil {
			if ok {
				t.Errorf("%s: accepted object by object, but the whole config is invalid: %v", s.name, werr)
			}
			continue // refused: p stays the last applied state
		}
		if !ok {
			if !strings.HasSuffix(s.name, "goes whole") {
				t.Errorf("%s: a valid change was not validated object by object", s.name)
			}
			p = &applied{st: next, cfg: whole, idx: config.NewRouteIndex(whole)}
			continue
		}
		byOne++
		if got, want := objectsYAML(t, inc), objectsYAML(t, whole); got != want {
			t.Fatalf("%s: object by object:\n%s\nwhole:\n%s", s.name, got, want)
		}
		if inc.File != whole.File || inc.Hash == p.cfg.Hash || inc.Hash == "" {
			t.Errorf("%s: File %q (whole %q), Hash %q (before %q)", s.name, inc.File, whole.File, inc.Hash, p.cfg.Hash)
		}
		p.idx.Commit(ch)
		p = &applied{st: next, cfg: inc, idx: p.idx}
	}
	if byOne < 10 {
		t.Errorf("only %d changes were validated object by object", byOne)
	}
}

// objectsYAML is the upstreams and routes of c as YAML (lines of plugin entries differ between
// documents and are not YAML).
func objectsYAML(t *testing.T, c *config.Config) string {
	b, err := yaml.Marshal(map[string]any{"upstreams": c.Upstreams, "routes": c.Routes, "grace": c.ShutdownGrace})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
