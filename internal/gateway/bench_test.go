package gateway

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/accesslog"
	"sluice/internal/config"
)

// BenchmarkProxyPath measures one whole proxied request: a keep-alive client writes a raw
// HTTP/1.1 GET on one connection to a real gateway (built from a config, as `sluice run`
// does), which forwards it over its pool to a real net/http backend answering 300 bytes, and
// the client reads the response. The backend runs in this process, so its allocations are in
// allocs/op too: "direct" runs the same client against the backend alone, and the gateway's
// own cost is the difference between a proxy row and direct, side by side.
//
// Variants: one catch-all route, and 20 path-prefix routes (the request matches the last
// one) with the access log off and on (written to io.Discard through the real writer).
//
//	go test ./internal/gateway -run '^$' -bench ProxyPath -benchmem -count 6
func BenchmarkProxyPath(b *testing.B) {
	be := benchBackend(b)
	b.Run("direct", func(b *testing.B) {
		runClient(b, be, "/svc19/items")
	})
	for _, bc := range []struct {
		name   string
		routes int
		access bool
	}{
		{"1route-log-off", 1, false},
		{"20routes-log-off", 20, false},
		{"20routes-log-on", 20, true},
	} {
		b.Run(bc.name, func(b *testing.B) {
			addr := benchGateway(b, benchConfig(be, bc.routes), bc.access)
			runClient(b, addr, "/svc19/items")
		})
	}
}

// BenchmarkProxyPathParallel is BenchmarkProxyPath's 1-route case with GOMAXPROCS clients,
// each on its own connection, to show contention (pool, access log, metrics) that one
// connection cannot.
func BenchmarkProxyPathParallel(b *testing.B) {
	be := benchBackend(b)
	for _, bc := range []struct {
		name   string
		access bool
	}{{"log-off", false}, {"log-on", true}} {
		b.Run(bc.name, func(b *testing.B) {
			addr := benchGateway(b, benchConfig(be, 1), bc.access)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				c := dialClient(b, addr, "/svc19/items")
				defer c.conn.Close()
				for pb.Next() {
					if err := c.roundTrip(); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// benchBackend starts a net/http backend like bench/backend: a fixed 300-byte body.
func benchBackend(b *testing.B) string {
	b.Helper()
	body := []byte(strings.Repeat("x", 300))
	clen := strconv.Itoa(len(body))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", clen)
		w.Write(body)
	}))
	b.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// benchConfig is one upstream and n routes; the benchmark's request matches the last route.
func benchConfig(backend string, n int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, `
listeners:
  - address: 127.0.0.1:0
upstreams:
  - id: backend
    targets:
      - address: %s
    keepalive: {max_idle: 256}
log: {access: "off"}
admin: {enabled: false}
routes:
`, backend)
	if n == 1 {
		sb.WriteString("  - id: all\n    upstream: backend\n")
		return sb.String()
	}
	for i := 20 - n; i < 20; i++ {
		fmt.Fprintf(&sb, "  - id: svc%d\n    match: {path_prefix: /svc%d/}\n    upstream: backend\n", i, i)
	}
	return sb.String()
}

// benchGateway is startGateway for benchmarks: the access log, when on, goes to io.Discard
// through the real writer.
func benchGateway(b testing.TB, yaml string, access bool) string {
	b.Helper()
	var al *accesslog.Logger
	if access {
		al = accesslog.New(io.Discard)
	}
	return benchGatewayLog(b, yaml, al)
}

// benchGatewayLog starts a gateway for benchmarks with config yaml and the access log al
// (nil: none), closed with the gateway, and returns its listener's address.
func benchGatewayLog(b testing.TB, yaml string, al *accesslog.Logger) string {
	b.Helper()
	cfg, err := config.Parse("bench.yaml", []byte(yaml))
	if err != nil {
		b.Fatalf("config: %v\n%s", err, yaml)
	}
	gw := New(slog.New(slog.NewTextHandler(io.Discard, nil)), al)
	if err := gw.Apply(cfg); err != nil {
		b.Fatalf("apply: %v", err)
	}
	b.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		gw.Shutdown(ctx)
		al.Close()
	})
	for _, a := range gw.Addrs() {
		return a.String()
	}
	b.Fatal("gateway has no listener")
	return ""
}

// rawClient sends one fixed GET at a time on one keep-alive connection and reads the
// response without allocating, so allocs/op is the server side's.
type rawClient struct {
	conn net.Conn
	br   *bufio.Reader
	req  []byte
}

func dialClient(b testing.TB, addr, path string) *rawClient {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		b.Fatal(err)
	}
	req := "GET " + path + " HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n\r\n"
	return &rawClient{conn: c, br: bufio.NewReaderSize(c, 16<<10), req: []byte(req)}
}

func runClient(b *testing.B, addr, path string) {
	c := dialClient(b, addr, path)
	defer c.conn.Close()
	if err := c.roundTrip(); err != nil { // warm the pool
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if err := c.roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
}

var contentLength = []byte("content-length:")

func (c *rawClient) roundTrip() error {
	if _, err := c.conn.Write(c.req); err != nil {
		return err
	}
	line, err := c.br.ReadSlice('\n')
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return fmt.Errorf("status line %q", line)
	}
	n := -1
	for {
		line, err = c.br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if len(line) <= 2 {
			break
		}
		if len(line) > len(contentLength) && bytes.EqualFold(line[:len(contentLength)], contentLength) {
			n = 0
			for _, ch := range bytes.TrimSpace(line[len(contentLength):]) {
				n = n*10 + int(ch-'0')
			}
		}
	}
	if n < 0 {
		return fmt.Errorf("response without Content-Length")
	}
	_, err = c.br.Discard(n)
	return err
}

// BenchmarkUpload measures proxied requests with bodies on one keep-alive connection (the
// backend reads each body and answers 300 bytes): what the request body path costs, the
// watch for early responses included (docs/design.md, "Early responses"). 1 MiB bodies go
// through splice past their first 64 KiB.
//
//	go test ./internal/gateway -run '^$' -bench Upload -benchmem -count 6
func BenchmarkUpload(b *testing.B) {
	addr := benchGateway(b, benchConfig(rawBackend(b), 1), false)
	benchUploads(b, func(b testing.TB) *rawClient { return dialClient(b, addr, "/") })
}

// BenchmarkTLSUpload is BenchmarkUpload over one kept-alive TLS connection: the body's reads
// go through crypto/tls, their waits watched on the socket under it (early responses).
func BenchmarkTLSUpload(b *testing.B) {
	yaml, cfg := tlsListener(b, benchConfig(rawBackend(b), 1))
	addr := benchGateway(b, yaml, false)
	benchUploads(b, func(b testing.TB) *rawClient { return dialTLSClient(b, addr, "/", cfg) })
}

// benchUploads runs the uploads of BenchmarkUpload, each size on a new client from dial.
func benchUploads(b *testing.B, dial func(testing.TB) *rawClient) {
	head := "POST /svc19/items HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\n"
	for _, size := range []int{1 << 10, 100 << 10, 1 << 20} {
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			c := dial(b)
			defer c.conn.Close()
			c.req = []byte(head + "Content-Length: " + strconv.Itoa(size) + "\r\n\r\n" + strings.Repeat("b", size))
			if err := c.roundTrip(); err != nil { // warm the pool
				b.Fatal(err)
			}
			b.SetBytes(int64(size))
			roundTrips(b, c)
		})
	}
}

// roundTrips runs c's request in b's loop, and reports allocations and the process's CPU
// time per request (cpu-us/op: client, gateway and backend; compare builds side by side).
func roundTrips(b *testing.B, c *rawClient) {
	b.ReportAllocs()
	start := processCPU()
	for b.Loop() {
		if err := c.roundTrip(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64((processCPU()-start).Nanoseconds())/1e3/float64(b.N), "cpu-us/op")
}

// BenchmarkTLSNewConnection is one request per new TLS connection through the gateway, with
// a full handshake or a resumed session (X25519, ECDSA P-256, TLS 1.3), for profiling the
// handshake path (bench/tls.sh compares it with the other proxies).
func BenchmarkTLSNewConnection(b *testing.B) {
	yaml, client := tlsListener(b, benchConfig(rawBackend(b), 1))
	addr := benchGateway(b, yaml, false)
	req := []byte("GET /svc0/x HTTP/1.1\r\nHost: bench.example\r\nConnection: close\r\n\r\n")
	for _, resume := range []bool{false, true} {
		b.Run(map[bool]string{false: "full", true: "resumed"}[resume], func(b *testing.B) {
			cfg := client.Clone()
			cfg.CurvePreferences = []tls.CurveID{tls.X25519, tls.CurveP256}
			if resume {
				cfg.ClientSessionCache = tls.NewLRUClientSessionCache(1)
			}
			buf := make([]byte, 4096)
			for b.Loop() {
				c, err := tls.Dial("tcp", addr, cfg)
				if err != nil {
					b.Fatal(err)
				}
				c.Write(req)
				for {
					if _, err := c.Read(buf); err != nil {
						break
					}
				}
				c.Close()
			}
		})
	}
}
