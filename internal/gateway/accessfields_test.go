package gateway

import (
	"bytes"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/config"
	"sluice/internal/testutil"
)

// rawAccessLines returns the access log's lines as written.
func (tg *testGateway) rawAccessLines(want int) []string {
	tg.t.Helper()
	var lines []string
	testutil.WaitFor(tg.t, 3*time.Second, "access log lines", func() bool {
		lines = strings.Split(strings.TrimSpace(tg.access.String()), "\n")
		return len(lines) >= want && lines[0] != ""
	})
	return lines
}

// getWithUserAgent GETs path with User-Agent fieldtest/1.0 on c and wants a 200.
func (tg *testGateway) getWithUserAgent(c *http.Client, path string) {
	tg.t.Helper()
	req, _ := http.NewRequest("GET", tg.url(path), nil)
	req.Header.Set("User-Agent", "fieldtest/1.0")
	resp, _ := getEcho(tg.t, c, req)
	mustStatus(tg.t, resp, 200)
}

// TestAccessLogRequestFields: user agent, HTTP version, upstream status and bytes sent are
// in every line; the query string only with log.access_query (it can carry secrets), which a
// reload turns on; each key appears once.
func TestAccessLogRequestFields(t *testing.T) {
	be := echoBackend(t, "a")
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	c := newClient()
	send := func(path string) { tg.getWithUserAgent(c, path) }
	// Each line is written after its response: wait for it before the next step.
	send("/q?token=secret")
	tg.rawAccessLines(1)
	if err := tg.gw.Apply(mustParse(t, yaml+"log: {access_query: true}\n", vars)); err != nil {
		t.Fatal(err)
	}
	send("/q?token=visible")
	tg.rawAccessLines(2)
	out := rawExchange(t, tg.addr, "GET /old HTTP/1.0\r\nHost: x\r\n\r\n", 3*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Fatalf("HTTP/1.0 request: %q", out)
	}
	raw := tg.rawAccessLines(3)
	for _, line := range raw {
		if rep := testutil.RepeatedKeys(t, line); rep != nil {
			t.Errorf("keys %q more than once: %s", rep, line)
		}
	}
	if strings.Contains(raw[0], "secret") {
		t.Errorf("the query is logged although log.access_query is off: %s", raw[0])
	}
	lines := tg.accessLines(3)
	for i, want := range []map[string]any{
		{"user_agent": "fieldtest/1.0", "http_version": "HTTP/1.1", "upstream_status": 200.0, "query": nil},
		{"user_agent": "fieldtest/1.0", "http_version": "HTTP/1.1", "upstream_status": 200.0, "query": "token=visible"},
		{"user_agent": nil, "http_version": "HTTP/1.0", "upstream_status": 200.0, "query": nil},
	} {
		l := lines[i]
		for k, v := range want {
			if l[k] != v {
				t.Errorf("line %d: %s = %#v, want %#v (%v)", i, k, l[k], v, l)
			}
		}
		sent, out := l["bytes_sent"].(float64), l["bytes_out"].(float64)
		if out <= 0 || sent <= out+len64("HTTP/1.1 200 OK\r\n\r\n") {
			t.Errorf("line %d: bytes_sent %v, bytes_out %v: want the body and more for the head", i, sent, out)
		}
	}
}

func len64(s string) float64 { return float64(len(s)) }

// TestAccessLogUpstreamStatus: a retried 503 shows in the attempt's status, the status that
// was relayed in upstream_status; a gateway error that no backend answered has neither.
func TestAccessLogUpstreamStatus(t *testing.T) {
	var calls atomic.Int32
	flaky := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(503)
		}
	}))
	t.Cleanup(flaky.Close)
	tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: flaky
    targets: [{address: "{{flaky}}"}]
    retry: {attempts: 2, on: [status], statuses: [503], backoff_base: 1ms, backoff_max: 1ms}
  - id: dead
    targets: [{address: "{{dead}}"}]
    retry: {attempts: 1}
routes:
  - {id: flaky, match: {path_prefix: /flaky}, upstream: flaky}
  - {id: dead, match: {path_prefix: /dead}, upstream: dead}
`, map[string]string{"flaky": hostport(flaky), "dead": testutil.RefusingAddr(t)})
	c := newClient()
	mustStatus(t, get(t, c, tg.url("/flaky")), 200)
	mustStatus(t, get(t, c, tg.url("/dead")), 502)
	lines := tg.accessLines(2)
	tries, _ := json.Marshal(lines[0]["tries"])
	if lines[0]["upstream_status"] != 200.0 || !bytes.Contains(tries, []byte(`"status":503`)) || !bytes.Contains(tries, []byte(`"status":200`)) {
		t.Errorf("retried request: upstream_status %v, tries %s; want 200, and 503 then 200", lines[0]["upstream_status"], tries)
	}
	if _, ok := lines[1]["upstream_status"]; ok || lines[1]["reason"] != "upstream_connect_refused" {
		t.Errorf("refused request: %v; want reason upstream_connect_refused and no upstream_status", lines[1])
	}
}

// appendToken must give strconv.AppendQuote's bytes for every string, on its fast path and off.
func TestAppendTokenMatchesAppendQuote(t *testing.T) {
	for _, s := range []string{"", "ok", "127.0.0.1:8080", "[::1]:443", "connect_refused", `a"b`, `a\b`,
		"a\x00", "\x1f", "\x7f", " ~", "é", "\xff", "tab\there", "x\u2028y"} {
		if got, want := string(appendToken([]byte("x"), s)), string(strconv.AppendQuote([]byte("x"), s)); got != want {
			t.Errorf("%q: got %s want %s", s, got, want)
		}
	}
}

// TestAccessLogFieldOrder: every key of a default line is a field config knows, in the order
// of config.AccessFieldNames (the order docs/config.md promises for any field list); an
// Apply with log.access_fields makes the next line carry exactly those fields.
func TestAccessLogFieldOrder(t *testing.T) {
	be := echoBackend(t, "a")
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml+"log: {access_query: true}\n", vars)
	c := newClient()
	send := func(path string) { tg.getWithUserAgent(c, path) }
	send("/a?x=1")
	names := config.AccessFieldNames()
	keys := testutil.JSONKeys(t, tg.rawAccessLines(1)[0])
	if len(keys) < 15 {
		t.Errorf("default line has %d keys, want the full line: %q", len(keys), keys)
	}
	last := -1
	for _, k := range keys {
		i := slices.Index(names, k)
		if i <= last {
			t.Errorf("key %q: unknown to config or out of config.AccessFieldNames' order in %q", k, keys)
		}
		last = i
	}
	if err := tg.gw.Apply(mustParse(t, yaml+"log: {access_query: true, access_fields: [tries, query, path, status]}\n", vars)); err != nil {
		t.Fatal(err)
	}
	send("/b?x=2")
	if got, want := testutil.JSONKeys(t, tg.rawAccessLines(2)[1]), []string{"path", "query", "status", "tries"}; !slices.Equal(got, want) {
		t.Errorf("after Apply with access_fields: keys %q, want %q", got, want)
	}
}

// TestAccessLogFieldsRefusedReload: a config refused when its listeners are opened (an
// address in use) leaves the access log fields as they were.
func TestAccessLogFieldsRefusedReload(t *testing.T) {
	be := echoBackend(t, "a")
	yaml, vars := basicConfig(hostport(be))
	tg := startGateway(t, yaml, vars)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	bad := strings.Replace(yaml, "listeners:\n", "listeners:\n  - address: "+busy.Addr().String()+"\n", 1) +
		"log: {access_fields: [path]}\n"
	if err := tg.gw.Apply(mustParse(t, bad, vars)); err == nil {
		t.Fatal("Apply of a config with a listener address in use succeeded")
	}
	mustStatus(t, get(t, newClient(), tg.url("/after")), 200)
	if keys := testutil.JSONKeys(t, tg.rawAccessLines(1)[0]); len(keys) < 15 || keys[0] != "time" {
		t.Errorf("after a refused reload with access_fields [path]: keys %q, want the default line's", keys)
	}
}
