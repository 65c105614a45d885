package gateway

import (
	"bufio"
	"crypto/tls"
	"strings"
	"testing"

	"sluice/internal/testutil"
)

// tlsListener turns benchConfig's listener into a TLS one with a certificate for bench.test,
// and returns the config with a client config that trusts it.
func tlsListener(tb testing.TB, yaml string) (string, *tls.Config) {
	return tlsListenerWith(tb, yaml, "")
}

// tlsListenerWith is tlsListener with more of the listener's tls block (YAML flow entries
// after a comma).
func tlsListenerWith(tb testing.TB, yaml, extra string) (string, *tls.Config) {
	tb.Helper()
	ca := testutil.NewCA(tb)
	cert, key := ca.Issue(tb, "bench", testutil.CertOptions{DNSNames: []string{"bench.test"}})
	yaml = strings.Replace(yaml, "  - address: 127.0.0.1:0\n",
		"  - address: 127.0.0.1:0\n    tls: {certificates: [{cert_file: "+cert+", key_file: "+key+"}]"+extra+"}\n", 1)
	return yaml, ca.ClientConfig("bench.test")
}

// mtlsListener is tlsListener under mutual TLS (client_auth: require); the client config
// presents a certificate whose subject is CN=cn.
func mtlsListener(tb testing.TB, yaml, cn string) (string, *tls.Config) {
	tb.Helper()
	clientCA := testutil.NewCA(tb)
	yaml, cfg := tlsListenerWith(tb, yaml, ", client_auth: require, client_ca_file: "+clientCA.CAFile(tb))
	cert, err := tls.X509KeyPair(clientCA.IssuePEM(tb, testutil.CertOptions{CommonName: cn, Client: true}))
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Certificates = []tls.Certificate{cert}
	return yaml, cfg
}

// dialTLSClient is dialClient over TLS.
func dialTLSClient(tb testing.TB, addr, path string, cfg *tls.Config) *rawClient {
	tb.Helper()
	tc, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	c := dialClient(tb, addr, path)
	c.conn.Close()
	c.conn, c.br = tc, bufio.NewReaderSize(tc, 16<<10)
	return c
}

// TestTLSProxyPathAllocations pins the TLS keep-alive path to what crypto/tls itself
// allocates: the request of TestProxyPathAllocatesNothing (20 routes, access log and metrics
// on, so the line's TLS fields too) over a kept-alive TLS connection. crypto/tls makes one
// 16-byte allocation each time it reads a record from the socket (readFromUntil's
// atLeastReader, passed as an io.Reader), on the gateway's side and on this test client's:
// 2 per round trip, none of them Sluice's. Naming the cipher suite with
// tls.CipherSuiteName made it 16.
func TestTLSProxyPathAllocations(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	yaml, cfg := tlsListener(t, benchConfig(rawBackend(t), 20))
	c := dialTLSClient(t, benchGateway(t, yaml, true), "/svc19/items", cfg)
	defer c.conn.Close()
	allocs := roundTripAllocs(t, c)
	if allocs >= 2.5 {
		t.Fatalf("%.2f heap allocations per proxied TLS request, want 2 (crypto/tls's reads, both sides)", allocs)
	}
	t.Logf("%.3f allocations per proxied TLS request (client and gateway)", allocs)
}

// TestMTLSProxyPathAllocations: under mutual TLS, a request allocates no more than the same
// request over TLS without a client certificate, although the access log writes the
// client's subject and a route matches on it: the subject is rendered once per connection
// (server.Served.ClientSubject), not per request. Rendering it per request (in the route's
// TLS fact or in the log line) made it 10 (8 more, in either place).
func TestMTLSProxyPathAllocations(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	be := rawBackend(t)
	// A route on the subject, ahead of the one the request would match otherwise: under
	// mutual TLS it wins (a TLS condition counts like a header condition); without a
	// certificate the subject is absent and svc19 serves.
	yaml := benchConfig(be, 20) + "  - id: by-subject\n    match: {path_prefix: /svc19/, tls: [{name: client_cert_subject, exact: CN=bench-client}]}\n    upstream: backend\n"
	var allocs [2]float64
	for i, mutual := range []bool{false, true} {
		y, cfg := tlsListener(t, yaml)
		if mutual {
			y, cfg = mtlsListener(t, yaml, "bench-client")
		}
		c := dialTLSClient(t, benchGateway(t, y, true), "/svc19/items", cfg)
		defer c.conn.Close()
		allocs[i] = roundTripAllocs(t, c)
	}
	t.Logf("allocations per request: TLS %.3f, mutual TLS %.3f", allocs[0], allocs[1])
	if allocs[1] >= allocs[0]+0.5 {
		t.Fatalf("%.2f heap allocations per request under mutual TLS, %.2f without: want no more", allocs[1], allocs[0])
	}
}

// TestCipherSuiteName: the access log's suite names are crypto/tls's, for every suite it
// knows and for one it does not.
func TestCipherSuiteName(t *testing.T) {
	ids := []uint16{0x0a0a, 0xffff} // unknown: the hex form
	for _, list := range [][]*tls.CipherSuite{tls.CipherSuites(), tls.InsecureCipherSuites()} {
		for _, s := range list {
			ids = append(ids, s.ID)
		}
	}
	for _, id := range ids {
		if got, want := cipherSuiteName(id), tls.CipherSuiteName(id); got != want {
			t.Errorf("cipherSuiteName(%#04x) = %q, want %q", id, got, want)
		}
	}
}

// BenchmarkTLSProxyPath is BenchmarkProxyPath's 1-route request over one kept-alive TLS
// connection to the allocation-free backend, with the access log off and on (its TLS fields
// included), and the process's CPU time per request (cpu-us/op: client, gateway and backend;
// compare builds side by side).
//
//	go test ./internal/gateway -run '^$' -bench 'TLSProxyPath' -benchmem -count 6
func BenchmarkTLSProxyPath(b *testing.B) {
	be := rawBackend(b)
	for _, access := range []bool{false, true} {
		b.Run(map[bool]string{false: "log-off", true: "log-on"}[access], func(b *testing.B) {
			yaml, cfg := tlsListener(b, benchConfig(be, 1))
			c := dialTLSClient(b, benchGateway(b, yaml, access), "/svc19/items", cfg)
			defer c.conn.Close()
			if err := c.roundTrip(); err != nil { // warm the pool
				b.Fatal(err)
			}
			roundTrips(b, c)
		})
	}
}
