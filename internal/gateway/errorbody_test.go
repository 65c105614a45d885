package gateway

import (
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestErrorBodiesFollowExposeDetails: by default a gateway error body has the reason, the
// message and the request id, and no internal cause or target address (docs/errors.md);
// the access log has them. errors.expose_details adds "detail" and "target".
func TestErrorBodiesFollowExposeDetails(t *testing.T) {
	dead := testutil.RefusingAddr(t)
	yaml := `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: dead
    targets: [{address: "{{dead}}"}]
    retry: {attempts: 1}
routes:
  - {id: dead, upstream: dead}
`
	vars := map[string]string{"dead": dead}
	tg := startGateway(t, yaml, vars)
	c := newClient()
	badRequest := "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"
	body := func(raw string) map[string]any {
		t.Helper()
		_, b, _ := strings.Cut(raw, "\r\n\r\n")
		var m map[string]any
		if err := json.Unmarshal([]byte(b), &m); err != nil {
			t.Fatalf("error body is not JSON: %v: %q", err, raw)
		}
		return m
	}
	check := func(expose bool) {
		t.Helper()
		resp, err := c.Get(tg.url("/x"))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var m map[string]any
		json.Unmarshal(b, &m)
		if resp.StatusCode != 502 || m["error"] != "upstream_connect_refused" || m["request_id"] == "" {
			t.Fatalf("502 answer %d %s", resp.StatusCode, b)
		}
		if _, has := m["detail"]; has != expose {
			t.Errorf("expose_details %t: 502 body %s", expose, b)
		}
		if has := strings.Contains(string(b), dead); has != expose {
			t.Errorf("expose_details %t: the target address in the 502 body: %t: %s", expose, has, b)
		}
		m400 := body(rawExchange(t, tg.addr, badRequest, 3*time.Second))
		if _, has := m400["detail"]; has != expose || m400["error"] != "bad_request" {
			t.Errorf("expose_details %t: 400 body %v", expose, m400)
		}
	}
	check(false)
	lines := tg.accessLines(2)
	if e, _ := lines[0]["error"].(string); !strings.Contains(e, dead) {
		t.Errorf("access log error %q lacks the target address", e)
	}
	if e, _ := lines[1]["error"].(string); e == "" || lines[1]["reason"] != "bad_request" {
		t.Errorf("access log of the 400 lacks its cause: %v", lines[1])
	}
	if err := tg.gw.Apply(mustParse(t, yaml+"errors: {expose_details: true}\n", vars)); err != nil {
		t.Fatal(err)
	}
	check(true)
}
