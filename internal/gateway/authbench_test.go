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

// Fixed loopback ports of the auth benchmarks (this work's port range is 26000-26999; they
// stay below the ephemeral range so they never collide with a test's port 0).
const (
	benchAuthGateway = "127.0.0.1:26101"
	benchAuthBackend = "127.0.0.1:26102"
	benchAuthService = "127.0.0.1:26103"
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

// BenchmarkAuthPlugins measures one proxied request (raw keep-alive client, raw backend, as
// BenchmarkProxyPath) through a route with no plugin, jwt-auth of each algorithm with its
// cache of verified tokens (the same token every request, as a client sends it) and
// without it (every request verified in full), and forward-auth (a net/http auth service
// in this process, so its allocations count too).
//
//	go test ./internal/gateway -run '^$' -bench AuthPlugins -benchmem -count 3
func BenchmarkAuthPlugins(b *testing.B) {
	be := rawBackendAt(b, benchAuthBackend)
	svc := authService(b, benchAuthService)
	sig := jwttest.Signers()
	type variant struct{ name, plugins, auth string }
	vs := []variant{{name: "none"}}
	for _, alg := range []string{"HS256", "RS256", "ES256", "EdDSA"} {
		tok := sig[alg].Sign(b, "", jwttest.Claims("alice"))
		vs = append(vs,
			variant{"jwt-" + alg + "-cached", jwtPlugin(b, sig[alg], 4096), "Bearer " + tok},
			variant{"jwt-" + alg + "-nocache", jwtPlugin(b, sig[alg], 0), "Bearer " + tok})
	}
	vs = append(vs, variant{"forward-auth", `    plugins:
      - name: forward-auth
        config:
          address: ` + svc + `/check
          response_headers: [X-User-Id]
`, "Bearer abc"})
	for _, v := range vs {
		b.Run(v.name, func(b *testing.B) {
			addr := benchGateway(b, authRouteConfig(benchAuthGateway, be, v.plugins), false)
			c := authClient(b, addr, v.auth)
			defer c.conn.Close()
			for range 10 { // warm the pools and the token cache
				if err := c.roundTrip(); err != nil {
					b.Fatal(err)
				}
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
