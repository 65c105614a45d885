package gateway

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"sluice/internal/testutil"
)

// The plugin benchmarks and allocation test: one route, a raw backend and a raw client that
// allocate nothing, so allocs/op is the gateway's. Every row sends the same request (an API
// key, an Origin, Basic credentials), so rows differ only by the plugins on the route.
//
//	SLUICE_BENCH_PORT_BASE=22000 go test ./internal/gateway -run '^$' -bench Plugins -benchmem -count 3
//
// SLUICE_BENCH_PORT_BASE puts the gateway and backend listeners on fixed loopback ports
// (base and up); unset, they take ephemeral ones. Another plugin (a rate limit) joins the
// comparison by adding a row to pluginBenchRows.

const pluginBenchKey = "bench-key-0123456789abcdef"

// pluginBenchRows are the route's plugins per row (YAML list items), "" for none.
var pluginBenchRows = []struct{ name, plugins string }{
	{"plain", ""},
	{"ip-restriction", "      - name: ip-restriction\n        config: {allow: [127.0.0.0/8, 10.0.0.0/8], deny: [192.0.2.0/24]}\n"},
	{"cors", "      - name: cors\n        config: {allow_origins: [\"https://app.example.com\"], allow_credentials: true, expose_headers: [X-Total]}\n"},
	{"key-auth", "      - name: key-auth\n"},
	{"basic-auth", "      - name: basic-auth\n"},
	{"key-auth+cors+ip-restriction", "      - name: ip-restriction\n        config: {allow: [127.0.0.0/8, 10.0.0.0/8], deny: [192.0.2.0/24]}\n" +
		"      - name: cors\n        config: {allow_origins: [\"https://app.example.com\"], allow_credentials: true, expose_headers: [X-Total]}\n" +
		"      - name: key-auth\n"},
	{"rate-limit", "      - name: rate-limit\n        config: {key: [client_ip], limit: 1000000000, window: 1s}\n"},
	{"limit-conn", "      - name: limit-conn\n        config: {max: 1000}\n"},
	{"compress (below min_size)", "      - name: compress\n"},
	{"sub-filter (not this type)", "      - name: sub-filter\n        config: {replace: [{from: internal, to: public}], types: [text/html]}\n"},
	{"key-auth+rate-limit+cors", "      - name: cors\n        config: {allow_origins: [\"https://app.example.com\"], allow_credentials: true, expose_headers: [X-Total]}\n" +
		"      - name: key-auth\n" +
		"      - name: rate-limit\n        config: {key: [consumer], limit: 1000000000, window: 1s}\n"},
	{"response-headers", "      - name: response-headers\n        config: {set: {Cache-Control: no-store, Strict-Transport-Security: max-age=63072000}, add: {Vary: Origin}, remove: [Server, X-Powered-By]}\n"},
	{"redirect (no match)", "      - name: redirect\n        config: {path_regex: \"^/old/(.*)$\", path_replacement: /new/$1}\n"},
	{"fault-injection (0%)", "      - name: fault-injection\n        config: {delay: {duration: 1s, percentage: 0}, abort: {status: 503, percentage: 0}}\n"},
	{"static-response (local answer)", "      - name: static-response\n        config: {body: \"User-agent: *\\nDisallow: /\\n\"}\n"},
}

func benchPort(i int) string {
	base, err := strconv.Atoi(os.Getenv("SLUICE_BENCH_PORT_BASE"))
	if err != nil {
		return "127.0.0.1:0"
	}
	return "127.0.0.1:" + strconv.Itoa(base+i)
}

// pluginBenchConfig is one route to backend with plugins on it, behind a listener on addr.
func pluginBenchConfig(t testing.TB, addr, backend, plugins string) string {
	hash, err := bcrypt.GenerateFromPassword([]byte("bench-pass"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	cfg := fmt.Sprintf(`
listeners:
  - address: %s
upstreams:
  - id: backend
    targets:
      - address: %s
    keepalive: {max_idle: 256}
log: {access: "off"}
admin: {enabled: false}
consumers:
  - name: bench
    credentials:
      key-auth: {keys: [%q]}
      basic-auth: {username: bench, password_hash: %q}
routes:
  - id: all
    upstream: backend
`, addr, backend, pluginBenchKey, hash)
	if plugins != "" {
		cfg += "    plugins:\n" + plugins
	}
	return cfg
}

// pluginBenchRequest carries every credential the rows may ask for.
var pluginBenchRequest = "GET /items HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n" +
	"Accept-Encoding: gzip, deflate, br, zstd\r\n" +
	"Origin: https://app.example.com\r\napikey: " + pluginBenchKey + "\r\n" +
	"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("bench:bench-pass")) + "\r\n\r\n"

// rawBackendOn is rawBackend on addr.
func rawBackendOn(t testing.TB, addr string) string {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	body := strings.Repeat("x", 300)
	resp := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
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
			}()
		}
	}()
	return ln.Addr().String()
}

// BenchmarkPlugins is the cost of each plugin, and of key-auth + CORS + ip-restriction
// together, against the plain route: ns/op and allocs/op per proxied request.
func BenchmarkPlugins(b *testing.B) {
	be := rawBackendOn(b, benchPort(0))
	for i, row := range pluginBenchRows {
		b.Run(row.name, func(b *testing.B) {
			addr := benchGateway(b, pluginBenchConfig(b, benchPort(1+i), be, row.plugins), false)
			c := dialClient(b, addr, "/")
			defer c.conn.Close()
			c.req = []byte(pluginBenchRequest)
			if err := c.roundTrip(); err != nil { // warm the pool (and basic-auth's cache)
				b.Fatal(err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if err := c.roundTrip(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestPluginChainAllocatesNothing: a proxied request through each row's plugins (key-auth,
// CORS and ip-restriction together included) makes no heap allocation once warm, as the
// plain proxy path does (TestProxyPathAllocatesNothing).
func TestPluginChainAllocatesNothing(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	be := rawBackend(t)
	for _, row := range pluginBenchRows {
		t.Run(row.name, func(t *testing.T) {
			addr := benchGateway(t, pluginBenchConfig(t, "127.0.0.1:0", be, row.plugins), true)
			c := dialClient(t, addr, "/")
			defer c.conn.Close()
			c.req = []byte(pluginBenchRequest)
			if allocs := roundTripAllocs(t, c); allocs >= 0.5 {
				t.Errorf("%.2f heap allocations per proxied request, want 0", allocs)
			}
		})
	}
}

// BenchmarkPluginsInterleaved compares each row with the plain route on a shared, noisy
// machine: every iteration makes one request through the plain gateway and one through the
// row's, alternately, so that load from elsewhere hits both alike. It reports each side's
// ns per request and the row's cost as a share of plain ("pct-over-plain"); the req/s ratio
// is plain/row.
func BenchmarkPluginsInterleaved(b *testing.B) {
	be := rawBackendOn(b, benchPort(0))
	plainAddr := benchGateway(b, pluginBenchConfig(b, benchPort(1), be, ""), false)
	for i, row := range pluginBenchRows[1:] {
		b.Run(row.name, func(b *testing.B) {
			addr := benchGateway(b, pluginBenchConfig(b, benchPort(10+i), be, row.plugins), false)
			plain, with := dialClient(b, plainAddr, "/"), dialClient(b, addr, "/")
			defer plain.conn.Close()
			defer with.conn.Close()
			plain.req, with.req = []byte(pluginBenchRequest), []byte(pluginBenchRequest)
			interleave(b, plain, with)
		})
	}
}

// interleave measures with against plain on a shared, noisy machine: after 100 warm-up
// requests each (pools, caches), every iteration makes one request through plain and one
// through with, so that load from elsewhere hits both alike. It reports each side's ns per
// request and with's cost as a share of plain ("pct-over-plain").
func interleave(b *testing.B, plain, with *rawClient) {
	for _, c := range []*rawClient{plain, with} {
		for range 100 {
			if err := c.roundTrip(); err != nil {
				b.Fatal(err)
			}
		}
	}
	var tPlain, tWith time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t0 := time.Now()
		if err := plain.roundTrip(); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if err := with.roundTrip(); err != nil {
			b.Fatal(err)
		}
		tPlain += t1.Sub(t0)
		tWith += time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(tPlain.Nanoseconds())/n, "plain-ns/req")
	b.ReportMetric(float64(tWith.Nanoseconds())/n, "row-ns/req")
	b.ReportMetric(100*(float64(tWith)/float64(tPlain)-1), "pct-over-plain")
}
