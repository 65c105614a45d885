package gateway

import (
	"bytes"
	"os"
	"strings"
	"testing"

	"sluice/internal/config"
)

// TestPluginDocsExamplesBuild: every YAML example of docs/plugins.md builds its plugins (the
// config package's docs test only parses them; plugin settings are checked when built).
func TestPluginDocsExamplesBuild(t *testing.T) {
	data, err := os.ReadFile("../../docs/plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for i, block := range bytes.Split(data, []byte("```yaml\n"))[1:] {
		body, _, ok := bytes.Cut(block, []byte("```"))
		if !ok {
			t.Fatalf("block %d is not closed", i+1)
		}
		cfg, err := config.Parse("plugins.md", body)
		if err != nil {
			t.Errorf("block %d: %v", i+1, err)
			continue
		}
		if err := CheckPlugins(cfg); err != nil {
			t.Errorf("block %d: %v\n%s", i+1, err, body)
		}
		if strings.Contains(string(body), "plugins:") || len(cfg.Consumers) > 0 {
			n++
		}
	}
	if n < 6 {
		t.Errorf("only %d examples with plugins or consumers", n)
	}
}
