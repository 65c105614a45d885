package config

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// yamlBlock is one ```yaml fenced block of a Markdown file.
type yamlBlock struct {
	n    int // 1-based among the file's yaml blocks, snippets included
	line int // line of the opening fence
	body []byte
}

// yamlBlocks returns the ```yaml blocks of a Markdown document, except those preceded
// (on the line right before the fence) by "<!-- snippet -->", which are partial.
func yamlBlocks(data []byte) ([]yamlBlock, error) {
	var (
		out     []yamlBlock
		cur     *yamlBlock
		prev    string
		n, line int
	)
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line++
		text := sc.Text()
		trimmed := strings.TrimSpace(text)
		switch {
		case cur != nil && trimmed == "```":
			out = append(out, *cur)
			cur = nil
		case cur != nil:
			cur.body = append(cur.body, text+"\n"...)
		case trimmed == "```yaml" || trimmed == "```yml":
			n++
			cur = &yamlBlock{n: n, line: line}
			if strings.TrimSpace(prev) == "<!-- snippet -->" {
				cur.body = nil
				cur.n = -n // skipped below
			}
		}
		prev = text
	}
	if cur != nil {
		return nil, fmt.Errorf("unterminated ```yaml block at line %d", cur.line)
	}
	kept := out[:0]
	for _, b := range out {
		if b.n > 0 {
			kept = append(kept, b)
		}
	}
	return kept, sc.Err()
}

// TestDocsExamplesParse checks that every full YAML example in the docs is a valid config.
func TestDocsExamplesParse(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md")
	total := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		blocks, err := yamlBlocks(data)
		if err != nil {
			t.Errorf("%s: %v", f, err)
			continue
		}
		for _, b := range blocks {
			total++
			// Named as if the example sat at the repository's root, so that the files it
			// names (examples/tls/...) resolve as they would for a config file there.
			name := filepath.Join("../..", fmt.Sprintf("%s#block%d", filepath.Base(f), b.n))
			if _, err := Parse(name, b.body); err != nil {
				t.Errorf("%s: yaml block %d (line %d) is not a valid config:\n%v", f, b.n, b.line, err)
			}
		}
	}
	t.Logf("%d yaml examples parsed", total)
}

// TestDocsExampleConfigsParse checks the configs under examples/ (the docs run them as they are:
// `sluice run -c examples/tls/sluice.yaml`), with the files they name.
func TestDocsExampleConfigsParse(t *testing.T) {
	files, err := filepath.Glob("../../examples/*/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no example configs found under examples/")
	}
	for _, f := range files {
		if _, err := Load(f); err != nil {
			t.Errorf("%s is not a valid config:\n%v", f, err)
		}
	}
}

func TestYAMLBlocks(t *testing.T) {
	doc := "text\n```yaml\na: 1\n```\n<!-- snippet -->\n```yaml\nb: 2\n```\n```go\nc\n```\n```yaml\nd: 3\n```\n"
	blocks, err := yamlBlocks([]byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if len(blocks) != 2 || string(blocks[0].body) != "a: 1\n" || blocks[1].n != 3 || string(blocks[1].body) != "d: 3\n" {
		t.Errorf("got %+v", blocks)
	}
	if _, err := yamlBlocks([]byte("```yaml\na: 1\n")); err == nil {
		t.Error("unterminated block: no error")
	}
}
