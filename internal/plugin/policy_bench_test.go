package plugin_test

import (
	"bufio"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"sluice/internal/h1"
	"sluice/internal/plugin"
	"sluice/internal/router"
)

// BenchmarkPolicyChain is BenchmarkChain for the traffic policy plugins, including those
// that answer the request themselves (a redirect, a static response, an abort): each row's
// request, per-attempt and response phases, or its local answer, without the network.
//
//	go test ./internal/plugin -run '^$' -bench PolicyChain -benchmem
func BenchmarkPolicyChain(b *testing.B) {
	for _, row := range []struct {
		name, plugins string
		answers       bool
	}{
		{"none", "", false},
		{"response-headers", "      - name: response-headers\n        config: {set: {Cache-Control: no-store, Strict-Transport-Security: max-age=63072000}, add: {Vary: Origin}, remove: [Server, X-Powered-By]}\n", false},
		{"redirect (no match)", "      - name: redirect\n        config: {path_regex: \"^/old/(.*)$\", path_replacement: /new/$1}\n", false},
		{"redirect (https)", "      - name: redirect\n        config: {scheme: https, status: 308}\n", true},
		{"redirect (regex)", "      - name: redirect\n        config: {path_regex: \"^/(.*)$\", path_replacement: /v2/$1, append_query: from=v1}\n", true},
		{"static-response", "      - name: static-response\n        config: {body: \"User-agent: *\\nDisallow: /\\n\"}\n", true},
		{"fault-injection (0%)", "      - name: fault-injection\n        config: {delay: {duration: 1s, percentage: 0}, abort: {status: 503, percentage: 0}}\n", false},
		{"fault-injection (abort)", "      - name: fault-injection\n        config: {abort: {status: 503}}\n", true},
	} {
		b.Run(row.name, func(b *testing.B) {
			yaml := `
listeners: [{address: "127.0.0.1:0"}]
upstreams: [{id: u, targets: [{address: "127.0.0.1:1"}]}]
routes:
  - id: r
    upstream: u
`
			if row.plugins != "" {
				yaml += "    plugins:\n" + row.plugins
			}
			set, err := plugin.New(parse(b, yaml), slog.New(slog.DiscardHandler))
			if err != nil {
				b.Fatal(err)
			}
			chain := set.Chain(0)
			ds := &fakeDS{}
			var pr plugin.Request
			var in router.Input
			client := netip.MustParseAddr("127.0.0.1")
			fwd := []byte("127.0.0.1")
			var resp h1.Header
			up := make([]byte, 0, 256)
			if err := h1.ReadRequest(bufio.NewReader(strings.NewReader(benchHead)), &ds.req, h1.Limits{}); err != nil {
				b.Fatal(err)
			}
			fields := slices.Clone(ds.req.Header.Fields)
			run := func() {
				ds.req.Header.Fields = append(ds.req.Header.Fields[:0], fields...)
				in = router.Input{Method: "GET", Host: "bench.example", Path: "/items", Query: "x=1"}
				pr.Begin(ds, &in, chain, client, "127.0.0.1", fwd)
				if pr.RunRequest() != row.answers {
					b.Fatalf("answered: %v (status %d), want %v", !row.answers, ds.status, row.answers)
				}
				if !row.answers {
					h := pr.Hooks()
					up = h.AppendUpstream(up[:0], 0)
					resp.Reset()
					resp.Add("Content-Type", "text/plain")
					resp.Add("Server", "backend")
					h.ResponseHead(200, &resp)
				}
				pr.RunLog(200)
				pr.End()
			}
			run()
			b.ReportAllocs()
			for b.Loop() {
				run()
			}
		})
	}
}
