package plugin_test

import (
	"log/slog"
	"slices"
	"strings"
	"testing"

	"sluice/internal/config"
	"sluice/internal/plugin"
	_ "sluice/internal/plugin/all"
)

// noop is a test plugin of any stage that filters requests.
type noop struct{}

func (noop) Request(*plugin.Request) error { return nil }

func init() {
	for _, k := range []struct {
		name  string
		stage plugin.Stage
	}{{"t-limit", plugin.StageLimit}, {"t-transform", plugin.StageTransform}, {"t-access", plugin.StageAccess}} {
		plugin.Register(plugin.Kind{Name: k.name, Stage: k.stage, New: func(*plugin.Build) (any, error) { return noop{}, nil }})
	}
}

func parse(t testing.TB, yaml string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("t.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// TestChainOrder: the request phase runs by stage first, then in config order: global, the
// upstream's, the route's, each as written.
func TestChainOrder(t *testing.T) {
	cfg := parse(t, `
listeners: [{address: "127.0.0.1:0"}]
plugins:
  - name: t-transform
  - name: cors
    config: {allow_origins: ["*"]}
upstreams:
  - id: u
    targets: [{address: "127.0.0.1:1"}]
    plugins:
      - name: t-limit
      - name: key-auth
routes:
  - id: r
    upstream: u
    plugins:
      - name: t-access
      - name: consumer-restriction
        config: {deny_groups: [banned]}
      - name: basic-auth
      - name: t-limit
  - id: bare
    match: {path: /bare}
    upstream: u
`)
	set, err := plugin.New(cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	got := set.Chain(0).Plugins()
	want := []string{"t-access@access", "cors@preflight", "key-auth@auth", "basic-auth@auth",
		"consumer-restriction@authorize", "t-limit@limit", "t-limit@limit", "t-transform@transform"}
	if !slices.Equal(got, want) {
		t.Errorf("request phase order:\n got %v\nwant %v", got, want)
	}
	if got := set.Chain(1).Plugins(); len(got) != 4 { // global and upstream ones only
		t.Errorf("bare route chain = %v", got)
	}
}

// TestTooManyPlugins: a route's chain is bounded by MaxSlots.
func TestTooManyPlugins(t *testing.T) {
	var b strings.Builder
	b.WriteString("listeners: [{address: \"127.0.0.1:0\"}]\nupstreams: [{id: u, targets: [{address: \"127.0.0.1:1\"}]}]\nroutes:\n  - id: r\n    upstream: u\n    plugins:\n")
	for range plugin.MaxSlots + 1 {
		b.WriteString("      - name: t-limit\n")
	}
	_, err := plugin.New(parse(t, b.String()), slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), `route "r": 33 plugins apply to this route`) {
		t.Fatalf("New = %v", err)
	}
}
