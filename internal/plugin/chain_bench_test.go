package plugin_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"sluice/internal/h1"
	"sluice/internal/plugin"
	"sluice/internal/reason"
	"sluice/internal/router"
)

// fakeDS is the least proxy.Downstream the request phase needs: a parsed request head, and
// a response side that records the status.
type fakeDS struct {
	req    h1.Request
	status int
}

func (d *fakeDS) Request() *h1.Request                                   { return &d.req }
func (d *fakeDS) SetBodyLimit(int64)                                     {}
func (d *fakeDS) BodyLimit() int64                                       { return 0 }
func (d *fakeDS) ReadBody([]byte) (int, error)                           { return 0, nil }
func (d *fakeDS) BodyPending() bool                                      { return true }
func (d *fakeDS) BodyTrailer() *h1.Header                                { return nil }
func (d *fakeDS) WriteHead(s int, _ []byte, _ *h1.Header, _ int64) error { d.status = s; return nil }
func (d *fakeDS) Write(p []byte) (int, error)                            { return len(p), nil }
func (d *fakeDS) Flush() error                                           { return nil }
func (d *fakeDS) Finish(*h1.Header) error                                { return nil }
func (d *fakeDS) Abort()                                                 {}
func (d *fakeDS) WriteError(e *reason.Error, _ string)                   { d.status = e.Status }
func (d *fakeDS) Status() int                                            { return d.status }
func (d *fakeDS) Context() context.Context                               { return context.Background() }
func (d *fakeDS) ClientIP() string                                       { return "127.0.0.1" }
func (d *fakeDS) TLS() *tls.ConnectionState                              { return nil }
func (d *fakeDS) RequestIDBytes() []byte                                 { return []byte("id") }
func (d *fakeDS) ClientGone() bool                                       { return false }
func (d *fakeDS) CloseAfter()                                            {}

const benchKey = "bench-key-0123456789abcdef"

var benchHead = "GET /items?x=1 HTTP/1.1\r\nHost: bench.example\r\nUser-Agent: bench\r\nAccept: */*\r\n" +
	"Origin: https://app.example.com\r\napikey: " + benchKey + "\r\n" +
	"Authorization: Basic " + base64.StdEncoding.EncodeToString([]byte("bench:bench-pass")) + "\r\n\r\n"

// BenchmarkChain is the request, per-attempt and response phases of one route's chain,
// without the network: each plugin's own cost per request.
//
//	go test ./internal/plugin -run '^$' -bench Chain -benchmem
func BenchmarkChain(b *testing.B) {
	hash, _ := bcrypt.GenerateFromPassword([]byte("bench-pass"), bcrypt.MinCost)
	for _, row := range []struct{ name, plugins string }{
		{"none", ""},
		{"ip-restriction", "  - name: ip-restriction\n    config: {allow: [127.0.0.0/8, 10.0.0.0/8], deny: [192.0.2.0/24]}\n"},
		{"cors", "  - name: cors\n    config: {allow_origins: [\"https://app.example.com\"], allow_credentials: true, expose_headers: [X-Total]}\n"},
		{"key-auth", "  - name: key-auth\n"},
		{"basic-auth", "  - name: basic-auth\n"},
		{"consumer-restriction", "  - name: key-auth\n  - name: consumer-restriction\n    config: {allow_groups: [g]}\n"},
		{"key-auth+cors+ip-restriction", "  - name: ip-restriction\n    config: {allow: [127.0.0.0/8]}\n  - name: cors\n    config: {allow_origins: [\"https://app.example.com\"]}\n  - name: key-auth\n"},
		{"rate-limit", "  - name: rate-limit\n    config: {limit: 1000000000, window: 1s}\n"},
		{"limit-conn", "  - name: limit-conn\n    config: {max: 1000}\n"},
		{"key-auth+rate-limit+cors", "  - name: cors\n    config: {allow_origins: [\"https://app.example.com\"]}\n  - name: key-auth\n  - name: rate-limit\n    config: {key: [consumer], limit: 1000000000, window: 1s}\n"},
	} {
		b.Run(row.name, func(b *testing.B) {
			yaml := `
listeners: [{address: "127.0.0.1:0"}]
upstreams: [{id: u, targets: [{address: "127.0.0.1:1"}]}]
consumers:
  - name: bench
    groups: [g]
    credentials:
      key-auth: {keys: ["` + benchKey + `"]}
      basic-auth: {username: bench, password_hash: "` + string(hash) + `"}
routes:
  - id: r
    upstream: u
`
			if row.plugins != "" {
				yaml += "    plugins:\n" + strings.ReplaceAll(row.plugins, "\n  ", "\n      ")
				yaml = strings.Replace(yaml, "    plugins:\n  - ", "    plugins:\n      - ", 1)
			}
			benchChain(b, yaml, false)
		})
	}
}

// benchChain measures one route's chain built from yaml, without the network: the request
// phase, then (unless the chain answers itself, which must match answers) the per-attempt and
// response-head phases, then the log phase.
func benchChain(b *testing.B, yaml string, answers bool) {
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
	// The head is parsed once; each run restores its fields (filters delete some: the views
	// stay valid), so what is measured is the chain alone.
	if err := h1.ReadRequest(bufio.NewReader(strings.NewReader(benchHead)), &ds.req, h1.Limits{}); err != nil {
		b.Fatal(err)
	}
	fields := slices.Clone(ds.req.Header.Fields)
	run := func() {
		ds.req.Header.Fields = append(ds.req.Header.Fields[:0], fields...)
		in = router.Input{Method: "GET", Host: "bench.example", Path: "/items", Query: "x=1"}
		pr.Begin(ds, &in, chain, client, "127.0.0.1", fwd)
		if pr.RunRequest() != answers {
			b.Fatalf("answered: %v (status %d), want %v", !answers, ds.status, answers)
		}
		if !answers {
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
}
