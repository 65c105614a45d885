//go:build linux

package gateway

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestH2UpstreamDialCutByTryTimeout: a dial to an HTTP/2 target that does not complete the
// connection (its accept queue is full), cut by the attempt's try timeout before the
// connect timeout, is a 504 upstream_connect_timeout, as on HTTP/1.1: the attempt ends its
// context with a timeout cause, which the dial sees as canceled (it was reported as 502
// upstream_connect_refused, sending the operator to a backend that refused nothing). A TLS
// handshake so cut (the target accepts and never answers) is a 504 upstream_tls_handshake,
// for protocol auto too, whose dials the HTTP/1.1 pool makes (it was 502 there).
func TestH2UpstreamDialCutByTryTimeout(t *testing.T) {
	ca := testutil.NewCA(t)
	tlsOpts := "\n    tls: {ca_file: " + ca.CAFile(t) + ", server_name: 127.0.0.1}"
	unanswered := func(t *testing.T) string { return testutil.UnansweredAddr(t) }
	silent := func(t *testing.T) string { // the kernel completes the connection; no ServerHello
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		return ln.Addr().String()
	}
	for _, tc := range []struct {
		name, upstream string
		backend        func(t *testing.T) string
		want           string
	}{
		{"h2c", "protocol: h2c", unanswered, "upstream_connect_timeout"},
		{"h2", "protocol: h2" + tlsOpts, unanswered, "upstream_connect_timeout"},
		{"auto", "protocol: auto" + tlsOpts, unanswered, "upstream_connect_timeout"},
		{"h2 handshake", "protocol: h2" + tlsOpts, silent, "upstream_tls_handshake"},
		{"auto handshake", "protocol: auto" + tlsOpts, silent, "upstream_tls_handshake"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := startGateway(t, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: b
    targets: [{address: "{{backend}}"}]
    {{upstream}}
    timeouts: {connect: 30s}
    retry: {per_try_timeout: 300ms}
routes:
  - id: all
    upstream: b
`, map[string]string{"backend": tc.backend(t), "upstream": tc.upstream})
			c := &http.Client{Timeout: 20 * time.Second}
			resp, err := c.Get(tg.url("/x"))
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 504 || !strings.Contains(string(body), tc.want) {
				t.Errorf("a dial cut by the try timeout: %d %s; want 504 %s", resp.StatusCode, body, tc.want)
			}
		})
	}
}

// TestH2UpstreamDialCutByGRPCTimeout: a gRPC call whose grpc-timeout runs out while its
// attempt dials a target that does not complete the connection is answered DEADLINE_EXCEEDED
// upstream_timeout (the call's deadline decides), and the attempt's outcome in the access log
// is upstream_connect_timeout (it was upstream_connect_refused).
func TestH2UpstreamDialCutByGRPCTimeout(t *testing.T) {
	yaml := strings.Replace(grpcGatewayYAML, `[{address: "{{backend}}"}]`, `[{address: "`+testutil.UnansweredAddr(t)+`"}]`, 1)
	tg := startGateway(t, yaml, nil)
	if status, msg := grpcCall(t, tg, "300m"); status != "4" || !strings.HasPrefix(msg, "upstream_timeout") {
		t.Errorf("grpc-status %q grpc-message %q; want 4 upstream_timeout", status, msg)
	}
	lines := tg.accessLines(1)
	tries, _ := lines[0]["tries"].([]any)
	if len(tries) != 1 {
		t.Fatalf("access log tries %v; want one", lines[0]["tries"])
	}
	if try, _ := tries[0].(map[string]any); try["outcome"] != "upstream_connect_timeout" {
		t.Errorf("the attempt's outcome %v; want upstream_connect_timeout", try["outcome"])
	}
}
