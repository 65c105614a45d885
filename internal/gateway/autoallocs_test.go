package gateway

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"sluice/internal/testutil"
)

// TestAutoHTTP1PathAllocs: a protocol auto upstream whose target chose HTTP/1.1 costs the
// proxied request no allocation beyond what protocol http1 costs against the same TLS backend
// (the choice is one atomic load and a header lookup). Measured side by side in one process,
// backend included, so the figures are whole-process allocations per request.
func TestAutoHTTP1PathAllocs(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	ca := testutil.NewCA(t)
	be := tlsRawBackend(t, ca.ServerConfig(t, "127.0.0.1"))
	allocs := map[string]float64{}
	for _, proto := range []string{"http1", "auto"} {
		yaml := fmt.Sprintf(`
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: backend
    targets: [{address: "%s"}]
    protocol: %s
    tls: {ca_file: %s, server_name: 127.0.0.1}
log: {access: "off"}
admin: {enabled: false}
routes:
  - id: all
    upstream: backend
`, be, proto, ca.CAFile(t))
		c := dialClient(t, benchGateway(t, yaml, true), "/x")
		allocs[proto] = roundTripAllocs(t, c)
		c.conn.Close()
	}
	t.Logf("allocations per request: http1 %.2f, auto (chose http/1.1) %.2f", allocs["http1"], allocs["auto"])
	if allocs["auto"] > allocs["http1"]+0.5 {
		t.Errorf("auto allocates %.2f per request, http1 %.2f: the auto dispatch allocates", allocs["auto"], allocs["http1"])
	}
}

// tlsRawBackend is rawBackend over TLS (ALPN: whatever cfg offers; none here, HTTP/1.1).
func tlsRawBackend(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	body := strings.Repeat("x", 300)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " +
		strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	return serveConns(t, func(nc net.Conn) {
		c := tls.Server(nc, cfg)
		br := bufio.NewReaderSize(c, 8<<10)
		for {
			size, chunked, err := readRawHead(br)
			if err == nil {
				err = discardRawBody(br, size, chunked)
			}
			if err != nil {
				return
			}
			if _, err := c.Write(resp); err != nil {
				return
			}
		}
	})
}
