package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestAccessLogKeepsEveryLine runs the binary with the access log in a file: 300 requests,
// a rotation (mv, SIGUSR1), 300 more and SIGTERM right after the last answer. Every request
// has exactly one line, whole JSON, across the two files; every request sent after the reopen
// was logged is in the new file, in order of sending; and the rotated file holds only requests
// from before it.
func TestAccessLogKeepsEveryLine(t *testing.T) {
	be := okBackend(t)
	dir := t.TempDir()
	listen := freeAddr(t)
	access := filepath.Join(dir, "access.log")
	cfg := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf(`listeners:
  - address: %s
upstreams:
  - id: be
    targets: [{address: "%s"}]
routes:
  - {id: all, upstream: be}
admin: {enabled: false}
log: {access: "%s"}
`, listen, be, access)), 0o644); err != nil {
		t.Fatal(err)
	}
	p := start(t, "run", cfg)
	p.waitLog(t, `"sluice started"`, 0)
	const n = 300
	for i := range n {
		status(t, fmt.Sprintf("http://%s/a/%d", listen, i))
	}
	if err := os.Rename(access, access+".1"); err != nil {
		t.Fatal(err)
	}
	p.signal(t, syscall.SIGUSR1)
	p.waitLog(t, `"access log reopened"`, 0)
	for i := range n {
		status(t, fmt.Sprintf("http://%s/b/%d", listen, i))
	}
	p.signal(t, syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit 10s after SIGTERM")
	}
	paths := func(file string) []string {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for line := range strings.Lines(string(b)) {
			var v struct{ Path string }
			if err := json.Unmarshal([]byte(line), &v); err != nil {
				t.Fatalf("%s: a line that is not JSON: %v: %q", file, err, line)
			}
			out = append(out, v.Path)
		}
		return out
	}
	rotated, cur := paths(access+".1"), paths(access)
	seen := map[string]int{}
	for _, p := range append(rotated, cur...) {
		seen[p]++
	}
	for _, prefix := range []string{"/a/", "/b/"} {
		for i := range n {
			if c := seen[fmt.Sprint(prefix, i)]; c != 1 {
				t.Errorf("%s%d: %d lines, want 1", prefix, i, c)
			}
		}
	}
	var after []string
	for _, p := range cur {
		if strings.HasPrefix(p, "/b/") {
			after = append(after, p)
		}
	}
	for i, p := range after {
		if p != fmt.Sprint("/b/", i) {
			t.Fatalf("new file: line %d is %s, want /b/%d (all of them, in order)", i, p, i)
		}
	}
	for _, p := range rotated {
		if !strings.HasPrefix(p, "/a/") {
			t.Errorf("rotated file has %s, sent after the reopen", p)
		}
	}
}
