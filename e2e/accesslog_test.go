package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// startFileLog runs the binary with one route to a backend answering "ok" and the access
// log in a file, and returns the process, its listener's address and the log's path.
func startFileLog(t *testing.T) (p *proc, listen, access string) {
	t.Helper()
	be := okBackend(t)
	dir := t.TempDir()
	listen = testutil.FreeAddr(t)
	access = filepath.Join(dir, "access.log")
	cfg := filepath.Join(dir, "sluice.yaml")
	if err := os.WriteFile(cfg, []byte(routeConfig(listen, be, fmt.Sprintf("admin: {enabled: false}\nlog: {access: %q}\n", access))), 0o644); err != nil {
		t.Fatal(err)
	}
	p = start(t, "run", cfg)
	p.waitLog(t, `"sluice started"`, 0)
	return p, listen, access
}

// terminate sends SIGTERM and fails the test unless p exits cleanly within d.
func (p *proc) terminate(t *testing.T, d time.Duration) {
	t.Helper()
	p.signal(t, syscall.SIGTERM)
	select {
	case err := <-p.done:
		p.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(d):
		t.Fatalf("no exit %v after SIGTERM", d)
	}
}

// TestAccessLogKeepsEveryLine runs the binary with the access log in a file: 300 requests,
// a rotation (mv, SIGUSR1), 300 more and SIGTERM right after the last answer. Every request
// has exactly one line, whole JSON, across the two files; every request sent after the reopen
// was logged is in the new file, in order of sending; and the rotated file holds only requests
// from before it.
func TestAccessLogKeepsEveryLine(t *testing.T) {
	p, listen, access := startFileLog(t)
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
	p.terminate(t, 10*time.Second)
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

// TestAccessLogFieldList runs the binary with log.access_fields: lines have exactly the
// listed fields, in the line's order whatever the list's; a reload to
// log.access_exclude_fields changes the next lines; a reload naming an unknown field is
// rejected, naming it, and the previous fields stay; `sluice validate` rejects that file.
func TestAccessLogFieldList(t *testing.T) {
	be := okBackend(t)
	listen := testutil.FreeAddr(t)
	conf := func(log string) string { return routeConfig(listen, be, "admin: {enabled: false}\nlog: "+log+"\n") }
	path := configFile(t, conf("{access_fields: [status, path, time, method]}"))
	p := start(t, "run", "-c", path)
	p.waitLog(t, `"sluice started"`, 0)
	// lineOf sends a request for path and returns the keys of its access line, in order.
	lineOf := func(path string) []string {
		t.Helper()
		status(t, "http://"+listen+path)
		var keys []string
		testutil.WaitFor(t, 5*time.Second, "the access line of "+path, func() bool {
			for line := range strings.Lines(p.access()) {
				if strings.Contains(line, `"path":"`+path+`"`) {
					keys = testutil.JSONKeys(t, line)
					return true
				}
			}
			return false
		})
		return keys
	}
	if got, want := lineOf("/one"), []string{"time", "method", "path", "status"}; !slices.Equal(got, want) {
		t.Errorf("access_fields [status, path, time, method]: keys %q, want %q", got, want)
	}

	reloads := len(p.lines())
	replaceFile(t, path, conf("{access_exclude_fields: [time, request_id, user_agent, duration_ms, upstream_ms, tries]}"))
	p.signal(t, syscall.SIGHUP)
	p.waitLog(t, `"config reloaded"`, reloads)
	excluded := []string{"client_ip", "method", "host", "path", "http_version", "status", "bytes_in", "bytes_out",
		"bytes_sent", "route", "upstream", "target", "upstream_status", "attempts"}
	if got := lineOf("/two"); !slices.Equal(got, excluded) {
		t.Errorf("after the reload to access_exclude_fields: keys %q, want %q", got, excluded)
	}

	replaceFile(t, path, conf("{access_fields: [time, latency]}"))
	p.signal(t, syscall.SIGHUP)
	at := p.waitLog(t, `log.access_fields[1]: unknown field \"latency\"`, reloads)
	if line := p.lines()[at]; !strings.Contains(line, `"config reload rejected`) || !strings.Contains(line, `want one of time, request_id,`) {
		t.Errorf("rejection does not name the field and the valid names: %s", line)
	}
	if got := lineOf("/three"); !slices.Equal(got, excluded) {
		t.Errorf("after the rejected reload: keys %q, want the previous config's %q", got, excluded)
	}

	out, err := exec.Command(binary, "validate", path).CombinedOutput()
	if err == nil || !strings.Contains(string(out), path+`:9: log.access_fields[1]: unknown field "latency"`) {
		t.Errorf("sluice validate of an unknown field: %v, %s", err, out)
	}
}

// replaceFile replaces the file at path with one holding body, by a rename, so that the
// config watcher never reads it half written.
func replaceFile(t *testing.T, path, body string) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// TestAccessLogKeepsEveryLineUnderLoad runs the binary with the access log in a file and
// eight keep-alive clients sending requests without pause, many 64 KiB batches' worth, then
// SIGTERM while they still send. Every request answered has exactly one line, whole JSON, in
// the file after the exit (the lines still batched at shutdown included); a line without an
// answer can only be a request the shutdown cut after it was logged, at most one per client.
func TestAccessLogKeepsEveryLineUnderLoad(t *testing.T) {
	p, listen, access := startFileLog(t)
	const clients, before = 8, 4000 // ~1.5 MB of lines before the signal
	var answered atomic.Int64
	stop := make(chan struct{})
	got := make([][]string, clients)
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{}}
			defer hc.CloseIdleConnections()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				path := fmt.Sprintf("/load/%d/%d", c, i)
				resp, err := hc.Get("http://" + listen + path)
				if err != nil {
					if answered.Load() >= before { // refused or cut by the shutdown
						return
					}
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode == 200 {
					got[c] = append(got[c], path)
					answered.Add(1)
				}
			}
		})
	}
	testutil.WaitFor(t, 60*time.Second, fmt.Sprintf("%d answered requests", before), func() bool { return answered.Load() >= before })
	p.terminate(t, 20*time.Second)
	close(stop)
	wg.Wait()
	b, err := os.ReadFile(access)
	if err != nil {
		t.Fatal(err)
	}
	lines := map[string]int{}
	for line := range strings.Lines(string(b)) {
		var v struct{ Path string }
		if err := json.Unmarshal([]byte(line), &v); err != nil {
			t.Fatalf("a line that is not JSON: %v: %q", err, line)
		}
		lines[v.Path]++
	}
	n := 0
	for c := range clients {
		for _, path := range got[c] {
			n++
			if lines[path] != 1 {
				t.Errorf("%s answered, %d lines", path, lines[path])
			}
			delete(lines, path)
		}
	}
	if len(lines) > clients {
		t.Errorf("%d lines of requests not answered, want at most one per client (%d)", len(lines), clients)
	}
	t.Logf("%d requests answered, %d bytes of log, %d lines without an answer", n, len(b), len(lines))
}
