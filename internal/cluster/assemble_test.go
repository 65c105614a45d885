package cluster_test

import (
	"strings"
	"testing"

	"sluice/internal/cluster"
)

const localYAML = "listeners: [{address: \"127.0.0.1:0\"}]\nadmin: {enabled: false}\n"

func state(objs map[string]string) *cluster.State {
	st := cluster.NewState()
	st.Rev = 7
	for rel, v := range objs {
		st.Put(rel, &cluster.Object{Value: []byte(v), ModRev: 7})
	}
	return st
}

// TestAssemble: the objects and the node's file become one config, validated as a file is;
// each problem names the etcd key it is in.
func TestAssemble(t *testing.T) {
	local, err := cluster.ReadLocal("node.yaml", []byte(localYAML))
	if err != nil {
		t.Fatal(err)
	}
	up := `{"id":"app","targets":[{"address":"127.0.0.1:9"}]}`
	tests := []struct {
		name string
		objs map[string]string
		want []string // substrings of the error; none: valid
	}{
		{"valid", map[string]string{"upstreams/app": up, "routes/r": `{"match":{"path":"/"},"upstream":"app"}`}, nil},
		{"yaml value written by hand", map[string]string{"upstreams/app": "id: app\ntargets:\n  - address: 127.0.0.1:9\n"}, nil},
		{"unknown upstream", map[string]string{"upstreams/app": up, "routes/r": `{"upstream":"nope"}`},
			[]string{`etcd:/s/routes/r: upstream: unknown upstream "nope"`}},
		{"unknown field", map[string]string{"upstreams/app": up, "routes/r": `{"upstream":"app","colour":"red"}`},
			[]string{`etcd:/s/routes/r: `, `unknown field "colour"`}},
		{"wrong type", map[string]string{"upstreams/app": `{"targets":[{"address":"127.0.0.1:9"}],"timeouts":{"read":"soon"}}`},
			[]string{`etcd:/s/upstreams/app: `, "timeouts.read"}},
		{"id differs from the key", map[string]string{"upstreams/app": `{"id":"other","targets":[{"address":"127.0.0.1:9"}]}`},
			[]string{`etcd:/s/upstreams/app: id: other differs from the key's id "app"`}},
		{"not an object", map[string]string{"upstreams/app": `[1,2]`}, []string{"etcd:/s/upstreams/app: not a JSON object"}},
		{"node-local setting", map[string]string{"settings": `{"listeners":[]}`}, []string{"etcd:/s/settings: listeners: not a shared setting"}},
		{"shared setting", map[string]string{"settings": `{"shutdown_grace":"-1s"}`}, []string{"etcd:/s/settings: shutdown_grace: invalid duration"}},
		{"unknown kind", map[string]string{"widgets/w": `{}`}, []string{"etcd:/s/widgets/w: unknown kind"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := cluster.Assemble(local, "/s", state(tc.objs))
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatal(err)
				}
				if cfg.File != "etcd:/s@7" {
					t.Errorf("File %q", cfg.File)
				}
				return
			}
			if err == nil {
				t.Fatal("valid; want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
}

// TestAssembleNoEnv: "${NAME}" in an object from etcd is data, never the node's environment.
func TestAssembleNoEnv(t *testing.T) {
	t.Setenv("SLUICE_TEST_SECRET", "hunter2")
	local, err := cluster.ReadLocal("node.yaml", []byte(localYAML))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := cluster.Assemble(local, "/s", state(map[string]string{
		"upstreams/app": `{"targets":[{"address":"127.0.0.1:9"}]}`,
		"routes/r":      `{"upstream":"app","rewrite":{"set_headers":{"X-Leak":"${SLUICE_TEST_SECRET}"}}}`,
	}))
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.Routes[0].Rewrite.SetHeaders["X-Leak"]; got != "${SLUICE_TEST_SECRET}" {
		t.Fatalf("set_headers X-Leak = %q: the node's environment leaked into an object from etcd", got)
	}
}

// TestReadLocal: a node's file in cluster mode holds only node-local sections.
func TestReadLocal(t *testing.T) {
	_, err := cluster.ReadLocal("node.yaml", []byte(localYAML+"routes: []\nerrors: {expose_details: true}\n"))
	if err == nil || !strings.Contains(err.Error(), "node.yaml: routes: in cluster mode this comes from etcd") || !strings.Contains(err.Error(), "node.yaml: errors:") {
		t.Fatalf("ReadLocal: %v", err)
	}
}
