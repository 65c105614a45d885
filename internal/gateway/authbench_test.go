package gateway

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"sluice/internal/testutil"
	"sluice/internal/testutil/jwttest"
)

// authRouteConfig is one catch-all route to backend on listener with plugins (YAML list
// items indented for the route's plugins:), and consumer alice with a jwt-auth credential.
func authRouteConfig(listener, backend, plugins string) string {
	return fmt.Sprintf(`
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
  - name: alice
    credentials:
      jwt-auth: {claim_value: alice}
routes:
  - id: all
    upstream: backend
%s`, listener, backend, plugins)
}

// jwtPlugin is the jwt-auth plugin item for alg's key (a secret inline, else a PEM file),
// with cache_size cache and forwarded claims.
func jwtPlugin(t testing.TB, s jwttest.Signer, cache int) string {
	key := fmt.Sprintf(`{secret: "%s"}`, s.HMAC)
	if s.Priv != nil {
		key = fmt.Sprintf(`{public_key_file: "%s"}`, s.PEMFile(t))
	}
	return fmt.Sprintf(`    plugins:
      - name: jwt-auth
        config:
          algorithms: [%s]
          keys: [%s]
          issuer: https://issuer.test
          audiences: [api]
          cache_size: %d
          forward_claims: [{claim: sub, header: X-User}]
`, s.Alg, key, cache)
}

// authService is a forward-auth service that allows every request with X-User-Id.
func authService(t testing.TB, addr string) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-User-Id", "u-1")
	}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	srv.Listener.Close()
	srv.Listener = ln
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// BenchmarkAuthPlugins compares a route with jwt-auth (each algorithm, with its cache of
// verified tokens, the same token every request as a client sends it, and without the
// cache: every request verified in full) or forward-auth (a net/http auth service in this
// process, so its allocations count too) against the plain route, interleaved as
// BenchmarkPluginsInterleaved does: each iteration is one request through the plain gateway
// and one through the row's, so load from elsewhere hits both alike. allocs/op is the row's
// (the plain route makes none).
//
//	SLUICE_BENCH_PORT_BASE=26000 go test ./internal/gateway -run '^$' -bench AuthPlugins -benchmem -count 3
func BenchmarkAuthPlugins(b *testing.B) {
	be := rawBackendOn(b, benchPort(40))
	svc := authService(b, benchPort(41))
	plainAddr := benchGateway(b, authRouteConfig(benchPort(42), be, ""), false)
	sig := jwttest.Signers()
	type row struct{ name, plugins, auth string }
	var rows []row
	for _, alg := range []string{"HS256", "RS256", "ES256", "EdDSA"} {
		tok := "Bearer " + sig[alg].Sign(b, "", jwttest.Claims("alice"))
		rows = append(rows, row{"jwt-" + alg + "-cached", jwtPlugin(b, sig[alg], 4096), tok},
			row{"jwt-" + alg + "-nocache", jwtPlugin(b, sig[alg], 0), tok})
	}
	rows = append(rows, row{"forward-auth", "    plugins:\n      - name: forward-auth\n        config:\n" +
		"          address: " + svc + "/check\n          response_headers: [X-User-Id]\n", "Bearer abc"})
	for i, r := range rows {
		b.Run(r.name, func(b *testing.B) {
			addr := benchGateway(b, authRouteConfig(benchPort(43+i), be, r.plugins), false)
			plain, with := authClient(b, plainAddr, r.auth), authClient(b, addr, r.auth)
			defer plain.conn.Close()
			defer with.conn.Close()
			interleave(b, plain, with) // warms the pools and the token cache first
		})
	}
}

// authClient is a raw client whose request carries Authorization: auth ("" for none).
func authClient(t testing.TB, addr, auth string) *rawClient {
	c := dialClient(t, addr, "/x")
	if auth != "" {
		c.req = []byte(strings.Replace(string(c.req), "\r\n\r\n", "\r\nAuthorization: "+auth+"\r\n\r\n", 1))
	}
	return c
}

// TestJWTAuthCachedAllocatesNothing: a request whose token is in jwt-auth's cache of
// verified tokens costs no heap allocation through the whole proxy path, consumer and
// forwarded claim included (the proxy path's promise, kept with jwt-auth on).
func TestJWTAuthCachedAllocatesNothing(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	sig := jwttest.Signers()
	for _, alg := range []string{"HS256", "ES256"} {
		t.Run(alg, func(t *testing.T) {
			addr := benchGateway(t, authRouteConfig("127.0.0.1:0", rawBackend(t), jwtPlugin(t, sig[alg], 64)), true)
			c := authClient(t, addr, "Bearer "+sig[alg].Sign(t, "", jwttest.Claims("alice")))
			defer c.conn.Close()
			if allocs := roundTripAllocs(t, c); allocs >= 0.5 {
				t.Fatalf("%.2f heap allocations per request with a cached token, want 0", allocs)
			}
		})
	}
}
