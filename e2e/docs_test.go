package e2e

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// The docs tests read what a docs page promises about the running gateway (the admin API's
// endpoints and error statuses, the reason codes and their statuses, the metrics that
// count retries) and check it against the binary, so that a page cannot say 405 where the
// gateway answers 404. A row the test cannot provoke here is named in the test log.

// docTable returns the rows of the Markdown tables of a docs page whose header row starts
// with firstColumn, each row as its cells (backquotes kept).
func docTable(t *testing.T, page, firstColumn string) [][]string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "docs", page))
	if err != nil {
		t.Fatal(err)
	}
	var rows [][]string
	in := false
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			in = false
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case cells[0] == firstColumn:
			in = true
		case in && !strings.HasPrefix(cells[0], "---"):
			rows = append(rows, cells)
		}
	}
	if len(rows) == 0 {
		t.Fatalf("docs/%s has no table starting with %q", page, firstColumn)
	}
	return rows
}

func unquote(cell string) string { return strings.Trim(cell, "`") }

// answer is a gateway's answer as the docs describe it.
type answer struct {
	status int
	code   string // X-Sluice-Error, or the admin API's "error"
	allow  string
	body   string
}

func do(t *testing.T, method, url string, header map[string]string, body string) answer {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Errorf("%s %s: %v", method, url, err) // not Fatal: do also runs on other goroutines
		return answer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, code: resp.Header.Get("X-Sluice-Error"), allow: resp.Header.Get("Allow"), body: string(b)}
	if m := regexp.MustCompile(`"error":\s*"([a-z_]+)"`).FindStringSubmatch(a.body); a.code == "" && m != nil {
		a.code = m[1]
	}
	return a
}

// raw sends raw bytes to addr and parses the status and X-Sluice-Error of the answer.
func raw(t *testing.T, addr, request string) answer {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, request)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("%q: %v", request, err)
	}
	resp.Body.Close()
	return answer{status: resp.StatusCode, code: resp.Header.Get("X-Sluice-Error")}
}

// TestAdminDocsAgainstBinary checks docs/admin-api.md's endpoint and error tables.
func TestAdminDocsAgainstBinary(t *testing.T) {
	be := okBackend(t)
	listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	const key = "docs-test-key-0123456789"
	cfg := configFile(t, fmt.Sprintf(`listeners: [{address: "%s"}]
upstreams: [{id: be, targets: [{address: "%s"}]}]
routes: [{id: all, upstream: be}]
admin: {address: "%s", api_key: %s}
log: {access: "off"}
`, listen, be, admin, key))
	p := start(t, "run", cfg)
	p.waitLog(t, `"sluice started"`, 0)
	base := "http://" + admin
	withKey := map[string]string{"X-API-Key": key}

	var endpoints []string
	for _, row := range docTable(t, "admin-api.md", "endpoint") {
		method, path, ok := strings.Cut(unquote(row[0]), " ")
		if !ok || method != "GET" {
			t.Errorf("endpoint row %q: want \"GET /path\"", row[0])
			continue
		}
		endpoints = append(endpoints, strings.ReplaceAll(path, "{id}", "be"))
	}
	for _, path := range endpoints {
		noKey := strings.Contains(path, "healthz") || strings.Contains(path, "readyz")
		if a := do(t, "GET", base+path, withKey, ""); a.status != 200 {
			t.Errorf("GET %s: %d %s, documented as an endpoint", path, a.status, a.body)
		}
		if a := do(t, "GET", base+path, nil, ""); noKey && a.status != 200 {
			t.Errorf("GET %s without the key: %d, documented as needing none", path, a.status)
		}
	}

	// Each documented error row, provoked.
	provoke := map[string]func() []answer{
		"unauthorized": func() []answer {
			var out []answer
			for _, path := range append(endpoints, "/admin/nothing") {
				if !strings.Contains(path, "healthz") && !strings.Contains(path, "readyz") {
					out = append(out, do(t, "GET", base+path, nil, ""))
				}
			}
			return out
		},
		"not_found": func() []answer {
			return []answer{do(t, "GET", base+"/admin/nothing", withKey, ""), do(t, "GET", base+"/admin/upstreams/nope/pool", withKey, "")}
		},
		"method_not_allowed": func() []answer {
			var out []answer
			for _, path := range endpoints {
				for _, m := range []string{"POST", "PUT", "DELETE", "PATCH"} {
					a := do(t, m, base+path, withKey, "")
					if a.allow != "GET, HEAD" {
						t.Errorf("%s %s: Allow %q, want \"GET, HEAD\"", m, path, a.allow)
					}
					out = append(out, a)
				}
			}
			return out
		},
	}
	for _, row := range docTable(t, "admin-api.md", "status") {
		status, _ := strconv.Atoi(row[0])
		code := unquote(row[1])
		f, ok := provoke[code]
		if !ok {
			t.Errorf("docs/admin-api.md documents %d %s, which this test does not check: add it", status, code)
			continue
		}
		for _, a := range f() {
			if a.status != status || a.code != code {
				t.Errorf("documented %d %s, the binary answered %d %q: %s", status, code, a.status, a.code, a.body)
			}
		}
	}
}

// stuckBackend answers nothing until released (closed).
type stuckBackend struct {
	addr    string
	release chan struct{}
	once    sync.Once
}

func newStuckBackend(t *testing.T) *stuckBackend {
	b := &stuckBackend{release: make(chan struct{})}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-b.release:
		case <-r.Context().Done():
		}
	}))
	b.addr = strings.TrimPrefix(srv.URL, "http://")
	t.Cleanup(func() { b.free(); srv.Close() })
	return b
}

func (b *stuckBackend) free() { b.once.Do(func() { close(b.release) }) }

// garbageBackend answers every connection with bytes that are not HTTP.
func garbageBackend(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				bufio.NewReader(c).ReadString('\n')
				io.WriteString(c, "HELLO THERE\r\n\r\n")
			}()
		}
	}()
	return ln.Addr().String()
}

// TestErrorDocsAgainstBinary checks the status that docs/errors.md gives each reason code
// against the binary, for every code this machine can provoke, and that the retries it
// makes are counted as docs/metrics.md says.
func TestErrorDocsAgainstBinary(t *testing.T) {
	live := okBackend(t)
	stuck := newStuckBackend(t)
	listen, admin := testutil.FreeAddr(t), testutil.FreeAddr(t)
	cfg := configFile(t, fmt.Sprintf(`listeners:
  - {address: "%[1]s", max_header_bytes: 1024}
upstreams:
  - {id: live, targets: [{address: "%[2]s"}]}
  - id: dead
    targets: [{address: "%[3]s"}]
    retry: {attempts: 1}
    health_check: {passive: {enabled: false}}
  - id: ejected
    targets: [{address: "%[4]s"}]
    retry: {attempts: 1}
    health_check: {panic_threshold: 0, passive: {consecutive_failures: 1}}
  - id: stuck
    targets: [{address: "%[5]s"}]
    timeouts: {read: 200ms}
    limits: {max_concurrent_requests: 1}
  - {id: garbage, targets: [{address: "%[6]s"}], retry: {attempts: 1}}
  - id: failover
    targets: [{address: "%[7]s"}, {address: "%[2]s"}]
    balancer: {policy: round_robin}
    health_check: {passive: {enabled: false}}
routes:
  - {id: live, match: {path_prefix: /live}, upstream: live}
  - {id: small, match: {path_prefix: /small}, upstream: live, max_body_bytes: 10}
  - {id: dead, match: {path_prefix: /dead}, upstream: dead}
  - {id: ejected, match: {path_prefix: /ejected}, upstream: ejected}
  - {id: stuck, match: {path_prefix: /stuck}, upstream: stuck}
  - {id: garbage, match: {path_prefix: /garbage}, upstream: garbage}
  - {id: failover, match: {path_prefix: /failover}, upstream: failover}
admin: {address: "%[8]s"}
log: {access: "off"}
`, listen, live, testutil.RefusingAddr(t), testutil.RefusingAddr(t), stuck.addr, garbageBackend(t), testutil.RefusingAddr(t), admin))
	p := start(t, "run", cfg)
	p.waitLog(t, `"sluice started"`, 0)
	gw := "http://" + listen

	provoke := map[string]func() answer{
		"bad_request":            func() answer { return raw(t, listen, "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n") },
		"no_route":               func() answer { return do(t, "GET", gw+"/nowhere", nil, "") },
		"request_body_too_large": func() answer { return do(t, "POST", gw+"/small", nil, strings.Repeat("x", 100)) },
		"request_header_too_large": func() answer {
			return do(t, "GET", gw+"/live", map[string]string{"X-Big": strings.Repeat("b", 2048)}, "")
		},
		"not_implemented": func() answer {
			return raw(t, listen, "POST /live HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n")
		},
		"http_version_not_supported": func() answer { return raw(t, listen, "GET /live HTTP/1.2\r\nHost: a\r\n\r\n") },
		"upstream_connect_refused":   func() answer { return do(t, "GET", gw+"/dead", nil, "") },
		"upstream_timeout":           func() answer { return do(t, "GET", gw+"/stuck", nil, "") },
		"upstream_bad_response":      func() answer { return do(t, "GET", gw+"/garbage", nil, "") },
		"no_healthy_target": func() answer {
			do(t, "GET", gw+"/ejected", nil, "") // refused: ejects the only target
			return do(t, "GET", gw+"/ejected", nil, "")
		},
		"upstream_overloaded": func() answer {
			// Two requests at once to an upstream limited to one in flight (which waits
			// 200 ms for its stuck backend): one of them is refused at once.
			got := make(chan answer, 2)
			for _, path := range []string{"/stuck/a", "/stuck/b"} {
				go func() { got <- do(t, "GET", gw+path, nil, "") }()
			}
			a, b := <-got, <-got
			if b.code == "upstream_overloaded" {
				return b
			}
			return a
		},
	}
	checked := 0
	for _, row := range docTable(t, "errors.md", "code") {
		code := unquote(row[0])
		f, ok := provoke[code]
		if !ok {
			t.Logf("docs/errors.md: %s (%s) is not provoked here", code, row[1])
			continue
		}
		status, err := strconv.Atoi(strings.Fields(row[1])[0])
		if err != nil {
			t.Errorf("docs/errors.md: %s: status %q is not a number", code, row[1])
			continue
		}
		if a := f(); a.status != status || a.code != code {
			t.Errorf("docs/errors.md says %s is %d; the binary answered %d %q", code, status, a.status, a.code)
		}
		checked++
		delete(provoke, code)
	}
	for code := range provoke {
		t.Errorf("%s is provoked here but not in docs/errors.md's tables", code)
	}
	if checked < 10 {
		t.Errorf("only %d reason codes checked", checked)
	}

	// docs/metrics.md: retries are counted. The failover upstream's first target is dead:
	// round robin sends every other request there, and each is retried on the live one.
	for range 4 {
		if a := do(t, "GET", gw+"/failover", nil, ""); a.status != 200 {
			t.Fatalf("failover: %d %s", a.status, a.body)
		}
	}
	var metricsDoc []string
	for _, row := range docTable(t, "metrics.md", "metric") {
		metricsDoc = append(metricsDoc, unquote(row[0]))
	}
	if !strings.Contains(strings.Join(metricsDoc, " "), "sluice_retries_total") {
		t.Fatal("docs/metrics.md does not list sluice_retries_total")
	}
	m := do(t, "GET", "http://"+admin+"/metrics", nil, "")
	if !regexp.MustCompile(`sluice_retries_total\{condition="connect_failure",upstream="failover"\} [1-9]`).MatchString(m.body) {
		t.Errorf("after retried requests, /metrics has no sluice_retries_total for them:\n%s", grepLines(m.body, "sluice_retr"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for l := range strings.Lines(s) {
		if strings.Contains(l, sub) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}
