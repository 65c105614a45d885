package all

import (
	"bufio"
	"bytes"
	"log/slog"
	"os"
	"strings"
	"testing"

	"sluice/internal/config"
	"sluice/internal/plugin"
)

// TestAuthDocsExamplesBuild: every full YAML example of the jwt-auth and forward-auth
// sections of docs/plugins.md is a config whose plugins build (config.Parse alone, which
// the config package's docs test runs, does not decode the plugins' own fields).
func TestAuthDocsExamplesBuild(t *testing.T) {
	data, err := os.ReadFile("../../../docs/plugins.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, section := range []string{"## jwt-auth", "## forward-auth"} {
		blocks := sectionYAML(data, section)
		if len(blocks) == 0 {
			t.Errorf("%s: no full YAML example", section)
		}
		for _, b := range blocks {
			cfg, err := config.Parse("docs/plugins.md", []byte(b))
			if err != nil {
				t.Errorf("%s: %v", section, err)
				continue
			}
			s, err := plugin.New(cfg, slog.New(slog.DiscardHandler))
			if err != nil {
				t.Errorf("%s: %v", section, err)
				continue
			}
			s.Close()
		}
	}
}

// sectionYAML returns the ```yaml blocks under the "## " heading section, except those
// marked <!-- snippet --> on the line before.
func sectionYAML(data []byte, section string) []string {
	var out []string
	var cur *strings.Builder
	in, prev := false, ""
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			out = append(out, cur.String())
			cur = nil
		case cur != nil:
			cur.WriteString(line + "\n")
		case strings.HasPrefix(line, "## "):
			in = line == section
		case in && strings.TrimSpace(line) == "```yaml" && strings.TrimSpace(prev) != "<!-- snippet -->":
			cur = &strings.Builder{}
		}
		prev = line
	}
	return out
}
