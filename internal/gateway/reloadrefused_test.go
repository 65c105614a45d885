package gateway

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"sluice/internal/testutil"
)

// TestRefusedApplyChangesNothing: a config refused because one of its new listeners cannot
// bind leaves the serving config's settings in force everywhere, not only its routes: a
// kept listener keeps its limits (max_body_bytes), and gateway error bodies keep leaving
// out the internal cause (errors.expose_details), though the refused config changed both.
func TestRefusedApplyChangesNothing(t *testing.T) {
	be := echoBackend(t, "a")
	dead := testutil.RefusingAddr(t)
	const cfg = `
listeners: [{address: "127.0.0.1:0"%s}%s]
upstreams:
  - {id: echo, targets: [{address: %q}]}
  - {id: dead, targets: [{address: %q}], retry: {attempts: 1}}
routes:
  - {id: dead, match: {path: /dead}, upstream: dead}
  - {id: all, upstream: echo}
%s`
	tg := startGateway(t, fmt.Sprintf(cfg, "", "", hostport(be), dead, ""), nil)
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	bad := mustParse(t, fmt.Sprintf(cfg, ", max_body_bytes: 4", fmt.Sprintf(", {address: %q}", taken.Addr()),
		hostport(be), dead, "errors: {expose_details: true}\n"), nil)
	if err := tg.gw.Apply(bad); err == nil {
		t.Fatal("apply with an unbindable listener succeeded")
	}

	resp, err := http.Post(tg.url("/"), "text/plain", strings.NewReader("a body of more than 4 bytes"))
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("after a refused apply a 27-byte body got %d (X-Sluice-Error %q); the serving config has no max_body_bytes",
			resp.StatusCode, resp.Header.Get("X-Sluice-Error"))
	}

	resp, err = http.Get(tg.url("/dead"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil || resp.StatusCode != 502 {
		t.Fatalf("502 answer %d %s", resp.StatusCode, b)
	}
	if _, has := m["detail"]; has || strings.Contains(string(b), dead) {
		t.Errorf("after a refused apply with expose_details the 502 body exposes details: %s", b)
	}
}
