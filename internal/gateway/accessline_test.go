package gateway

import (
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"regexp"
	"testing"
	"time"

	"sluice/internal/accesslog"
	"sluice/internal/config"
	"sluice/internal/h1"
	"sluice/internal/proxy"
	"sluice/internal/router"
	"sluice/internal/server"
)

// lineServed is a server.Served with fixed answers, for building access log lines without
// a connection.
type lineServed struct {
	req   h1.Request
	start time.Time
	tls   *tls.ConnectionState
	sub   string // ClientSubject: lineTLS's client certificate's, with withTLS
}

func (s *lineServed) Request() *h1.Request           { return &s.req }
func (s *lineServed) StartTime() time.Time           { return s.start }
func (s *lineServed) Proto() string                  { return "HTTP/1.1" }
func (s *lineServed) ListenerName() string           { return "main" }
func (s *lineServed) ClientIP() string               { return "10.1.2.3" }
func (s *lineServed) TLS() *tls.ConnectionState      { return s.tls }
func (s *lineServed) ClientSubject() string          { return s.sub }
func (s *lineServed) RequestIDBytes() []byte         { return lineRequestID }
func (s *lineServed) Status() int                    { return 200 }
func (s *lineServed) BodyBytes() int64               { return 12 }
func (s *lineServed) BytesOut() int64                { return 300 }
func (s *lineServed) BytesSent() int64               { return 389 }
func (s *lineServed) DroppedFields() (int, int)      { return 0, 0 }
func (s *lineServed) SplicedBytes() (int64, int64)   { return 0, 0 }
func (s *lineServed) ErrorGRPCStatus() (int, bool)   { return 0, false }
func (s *lineServed) withTLS() *lineServed           { s.tls, s.sub = lineTLS, "CN=client-1,O=Acme"; return s }
func (s *lineServed) withQuery(q string) *lineServed { s.req.Query = []byte(q); return s }

var _ server.Served = (*lineServed)(nil)

var lineRequestID = []byte("0f1e2d3c4b5a69788796a5b4c3d2e1f0")

var lineTLS = &tls.ConnectionState{Version: tls.VersionTLS13, CipherSuite: tls.TLS_AES_128_GCM_SHA256,
	DidResume: true, ServerName: "api.example.com",
	PeerCertificates: []*x509.Certificate{{Subject: pkix.Name{CommonName: "client-1", Organization: []string{"Acme"}}}}}

func newLineServed() *lineServed {
	s := &lineServed{start: time.Date(2026, 12, 6, 13, 50, 1, 234_000_000, time.UTC)}
	s.req.Header.Add("User-Agent", "curl/8.5.0")
	return s
}

// typicalRecord is a proxied GET answered on the first attempt on a reused connection.
func typicalRecord() *proxy.Record {
	rec := &proxy.Record{Target: "10.0.0.5:8080", UpstreamTime: 1234 * time.Microsecond, NumAttempts: 1}
	rec.Attempts[0] = proxy.Attempt{Target: "10.0.0.5:8080", ConnID: 7, Reused: true, IdleAge: 15 * time.Millisecond, Outcome: "ok", Status: 200}
	return rec
}

// busyRecord has every optional field: a consumer, a trace, a retry, a tunnel, trailers
// dropped, an early response, an interim response and a gateway error.
func busyRecord() *proxy.Record {
	rec := typicalRecord()
	rec.Consumer, rec.TraceID = "alice", []byte("4bf92f3577b34da6a3ce929d0e0e4736")
	rec.Attempts[1] = rec.Attempts[0]
	rec.Attempts[0].Outcome, rec.Attempts[0].Status, rec.Attempts[0].Retry = "ok", 503, "status"
	rec.NumAttempts = 2
	rec.Tunnel = proxy.TunnelRecord{Protocol: "websocket", BytesUp: 10, BytesDown: 20, Closed: "client", Duration: 2500 * time.Millisecond}
	rec.EarlyResponse, rec.Interim = true, 1
	rec.DroppedRequestTrailers, rec.DroppedResponseTrailers = 1, 2
	rec.Reason, rec.Err = "upstream_timeout", errors.New("read response head: i/o timeout")
	return rec
}

var durationMs = regexp.MustCompile(`"duration_ms":-?[0-9.]+`)

// TestLogAccessLines: with the default fields the line is byte for byte the one written
// before fields were configurable (the wants below are that code's output); a field list
// keeps only its fields.
func TestLogAccessLines(t *testing.T) {
	in := &router.Input{Method: "GET", Host: "api.example.com", Path: "/v1/users/42"}
	for _, tc := range []struct {
		name string
		log  config.Log
		ex   *lineServed
		rec  *proxy.Record
		want string
	}{
		{name: "default typical", ex: newLineServed(), rec: typicalRecord(),
			want: `{"time":"2026-12-06T13:50:01.234Z","request_id":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","client_ip":"10.1.2.3","method":"GET","host":"api.example.com","path":"/v1/users/42","http_version":"HTTP/1.1","user_agent":"curl/8.5.0","status":200,"bytes_in":12,"bytes_out":300,"bytes_sent":389,"route":"users","upstream":"app","target":"10.0.0.5:8080","upstream_status":200,"duration_ms":X,"upstream_ms":1.234,"attempts":1,"tries":[{"target":"10.0.0.5:8080","conn":7,"reused":true,"idle_ms":15,"outcome":"ok","status":200}]}`},
		{name: "default busy over TLS with query", log: config.Log{AccessQuery: true},
			ex: newLineServed().withTLS().withQuery("page=2"), rec: busyRecord(),
			want: `{"time":"2026-12-06T13:50:01.234Z","request_id":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","client_ip":"10.1.2.3","method":"GET","host":"api.example.com","path":"/v1/users/42","query":"page=2","http_version":"HTTP/1.1","user_agent":"curl/8.5.0","consumer":"alice","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","status":200,"bytes_in":12,"bytes_out":300,"bytes_sent":389,"route":"users","upstream":"app","target":"10.0.0.5:8080","upstream_status":200,"duration_ms":X,"upstream_ms":1.234,"tls_version":"TLS 1.3","tls_cipher":"TLS_AES_128_GCM_SHA256","tls_resumed":true,"sni":"api.example.com","client_cert_subject":"CN=client-1,O=Acme","tunnel":"websocket","tunnel_closed":"client","tunnel_bytes_up":10,"tunnel_bytes_down":20,"tunnel_ms":2500,"early_response":true,"interim_responses":1,"dropped_request_trailers":1,"dropped_response_trailers":2,"reason":"upstream_timeout","error":"read response head: i/o timeout","attempts":2,"tries":[{"target":"10.0.0.5:8080","conn":7,"reused":true,"idle_ms":15,"outcome":"ok","status":503,"retried_on":"status"},{"target":"10.0.0.5:8080","conn":7,"reused":true,"idle_ms":15,"outcome":"ok","status":200}]}`},
		{name: "default without access_query", ex: newLineServed().withQuery("token=secret"), rec: &proxy.Record{AnswerReason: "redirect", Plugin: "redirect"},
			want: `{"time":"2026-12-06T13:50:01.234Z","request_id":"0f1e2d3c4b5a69788796a5b4c3d2e1f0","client_ip":"10.1.2.3","method":"GET","host":"api.example.com","path":"/v1/users/42","http_version":"HTTP/1.1","user_agent":"curl/8.5.0","plugin":"redirect","reason":"redirect","status":200,"bytes_in":12,"bytes_out":300,"bytes_sent":389,"route":"users","upstream":"app","target":"","duration_ms":X,"upstream_ms":0}`},
		{name: "list", log: config.Log{AccessFields: []string{"status", "path", "time", "reason", "duration_ms"}},
			ex: newLineServed().withTLS(), rec: busyRecord(),
			want: `{"time":"2026-12-06T13:50:01.234Z","path":"/v1/users/42","status":200,"duration_ms":X,"reason":"upstream_timeout"}`},
		{name: "exclude", log: config.Log{AccessExcludeFields: []string{"time", "request_id", "user_agent", "tries", "tls_cipher", "tunnel_ms", "error"}},
			ex: newLineServed().withTLS(), rec: busyRecord(),
			want: `{"client_ip":"10.1.2.3","method":"GET","host":"api.example.com","path":"/v1/users/42","http_version":"HTTP/1.1","consumer":"alice","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","status":200,"bytes_in":12,"bytes_out":300,"bytes_sent":389,"route":"users","upstream":"app","target":"10.0.0.5:8080","upstream_status":200,"duration_ms":X,"upstream_ms":1.234,"tls_version":"TLS 1.3","tls_resumed":true,"sni":"api.example.com","client_cert_subject":"CN=client-1,O=Acme","tunnel":"websocket","tunnel_closed":"client","tunnel_bytes_up":10,"tunnel_bytes_down":20,"early_response":true,"interim_responses":1,"dropped_request_trailers":1,"dropped_response_trailers":2,"reason":"upstream_timeout","attempts":2}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			buf := &syncBuffer{}
			al := accesslog.New(buf)
			g := &Gateway{access: al}
			setLogFields(g, tc.log)
			g.logAccess(tc.ex, in, "users", "app", tc.rec, time.Since(tc.ex.StartTime()))
			al.Close()
			got := durationMs.ReplaceAllString(buf.String(), `"duration_ms":X`)
			if got != tc.want+"\n" {
				t.Errorf("line:\n got %s\nwant %s", got, tc.want)
			}
		})
	}
}

// BenchmarkLogAccess is building and batching one access log line (to io.Discard) for a
// typical proxied request, with every field (the default), a trimmed list and the default
// without the per-attempt detail and the user agent; "default-alternating" alternates two
// requests that differ in host, user agent and route, so that every run of fields a Line
// remembers misses (accesslog.Line.Recall): what a population of clients costs.
// cpu-ns/op is the process's CPU time per line (wall time counts waits for a CPU on a
// shared machine).
//
//	go test ./internal/gateway -run '^$' -bench LogAccess -count 5
func BenchmarkLogAccess(b *testing.B) {
	ins := [2]*router.Input{{Method: "GET", Host: "api.example.com", Path: "/v1/users/42"},
		{Method: "GET", Host: "www.example.com", Path: "/v1/users/42"}}
	routes := [2]string{"users", "pages"}
	for _, tc := range []struct {
		name        string
		log         config.Log
		alternating bool
	}{
		{name: "default"},
		{name: "default-alternating", alternating: true},
		{name: "trimmed", log: config.Log{AccessFields: trimmedFields}},
		{name: "no-tries", log: config.Log{AccessExcludeFields: []string{"tries", "user_agent"}}},
	} {
		b.Run(tc.name, func(b *testing.B) {
			al := accesslog.New(io.Discard)
			defer al.Close()
			g := &Gateway{access: al}
			setLogFields(g, tc.log)
			exs, rec := [2]*lineServed{newLineServed(), newLineServed()}, typicalRecord()
			exs[1].req.Header = h1.Header{}
			exs[1].req.Header.Add("User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
			b.ReportAllocs()
			cpu0, cpuOK := cpuTime()
			i := 0
			for b.Loop() {
				ex := exs[i]
				g.logAccess(ex, ins[i], routes[i], "app", rec, time.Since(ex.StartTime()))
				if tc.alternating {
					i ^= 1
				}
			}
			if cpu1, ok := cpuTime(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}

// trimmedFields is a short line an operator might choose: nginx's "combined" format's
// facts without the referer, plus the request id, route and times.
var trimmedFields = []string{"time", "request_id", "client_ip", "method", "host", "path", "status", "bytes_sent", "route", "duration_ms", "upstream_ms"}
