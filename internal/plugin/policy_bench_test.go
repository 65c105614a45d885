package plugin_test

import "testing"

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
			benchChain(b, yaml, row.answers)
		})
	}
}
