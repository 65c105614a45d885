package gateway

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"sluice/internal/testutil"
	"sluice/internal/tracing"
)

// traceBackend records the trace context of every request it receives. /fail-once answers
// 503 to its first request and 200 after.
type traceBackend struct {
	srv      *httptest.Server
	mu       sync.Mutex
	parents  []string // traceparent values, in arrival order ("" when none)
	states   []string // tracestate values
	failOnce atomic.Bool
}

func newTraceBackend(t *testing.T) *traceBackend { return newTraceBackendProto(t, false) }

// newTraceBackendProto is newTraceBackend, serving h2c (HTTP/2 with prior knowledge) too
// when h2c is set.
func newTraceBackendProto(t *testing.T, h2c bool) *traceBackend {
	b := &traceBackend{}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b.mu.Lock()
		b.parents = append(b.parents, strings.Join(r.Header.Values("Traceparent"), "|"))
		b.states = append(b.states, strings.Join(r.Header.Values("Tracestate"), "|"))
		b.mu.Unlock()
		if r.URL.Path == "/fail-once" && b.failOnce.CompareAndSwap(false, true) {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte("ok"))
	}))
	if h2c {
		b.srv.Config.Protocols = new(http.Protocols)
		b.srv.Config.Protocols.SetHTTP1(true)
		b.srv.Config.Protocols.SetUnencryptedHTTP2(true)
	}
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

func (b *traceBackend) addr() string { return b.srv.Listener.Addr().String() }

// last returns the traceparent and tracestate of the nth request from the end (1: last).
func (b *traceBackend) last(n int) (parent, state string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.parents[len(b.parents)-n], b.states[len(b.states)-n]
}

const tracingConfig = `
listeners: [{address: 127.0.0.1:0, protocols: [http1, h2c]}]
upstreams:
  - id: app
    targets: [{address: {{backend}}}]
    protocol: {{upstream}}
    retry: {attempts: 2, on: [status], backoff_base: 1ms, backoff_max: 2ms}
routes:
  - id: all
    upstream: app
tracing:
  endpoint: {{otlp}}
  protocol: {{protocol}}
  sampler: {{sampler}}
  ratio: {{ratio}}
  service_name: edge-test
  batch_timeout: 10ms
  timeout: {{timeout}}
  queue_size: {{queue}}
  batch_size: {{batch}}
`

// tracingVars are tracingConfig's values: always_on over OTLP/HTTP to endpoint otlp, with
// the given overrides.
func tracingVars(backend, otlp string, kv ...string) map[string]string {
	v := map[string]string{"backend": backend, "otlp": otlp, "protocol": "http", "sampler": "always_on",
		"ratio": "1", "timeout": "2s", "queue": "0", "batch": "0", "upstream": "http1"}
	for i := 0; i+1 < len(kv); i += 2 {
		v[kv[i]] = kv[i+1]
	}
	return v
}

// tracedGet sends GET path with the given extra header fields ("Name: value") on client c.
func tracedGet(t *testing.T, c *http.Client, url string, fields ...string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fields {
		name, value, _ := strings.Cut(f, ": ")
		req.Header.Add(name, value)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

func h2cClient() *http.Client {
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	return &http.Client{Transport: &http.Transport{Protocols: &p}, Timeout: 10 * time.Second}
}

// splitParent returns the trace id, parent id and flags of a valid traceparent, failing
// the test on any other value.
func splitParent(t *testing.T, tp string) (traceID, parentID, flags string) {
	t.Helper()
	if _, ok := tracing.ParseTraceparent([]byte(tp)); !ok || len(tp) != 55 {
		t.Fatalf("upstream got traceparent %q, not a valid version 00 value", tp)
	}
	return tp[3:35], tp[36:52], tp[53:55]
}

func spanOfKind(t *testing.T, spans []gotSpan, kind tracepb.Span_SpanKind) []gotSpan {
	t.Helper()
	var out []gotSpan
	for _, s := range spans {
		if s.kind == kind {
			out = append(out, s)
		}
	}
	return out
}

// TestTracingParentage: a request with a sampled traceparent, over HTTP/1.1 and h2c, to
// HTTP/1.1 and h2c upstreams, exported over OTLP/HTTP and OTLP/gRPC: the upstream gets the same trace with the
// gateway's attempt span as parent (not the client's header), the tracestate unchanged; the
// collector gets the gateway's server span (child of the client's span) and one attempt
// span (child of the server span) whose id is the parent id the upstream received, with
// the attempt's facts as attributes; the access log line carries the trace id.
func TestTracingParentage(t *testing.T) {
	const traceID, clientSpan = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	for _, tc := range []struct {
		name, protocol, clientProto, upstream string
		client                                *http.Client
	}{
		{"http1 client, OTLP/HTTP", "http", "1.1", "http1", &http.Client{Timeout: 10 * time.Second}},
		{"h2c client, OTLP/gRPC", "grpc", "2", "http1", h2cClient()},
		{"http1 client, h2c upstream", "http", "1.1", "h2c", &http.Client{Timeout: 10 * time.Second}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			defer tc.client.CloseIdleConnections() // the gateway's shutdown need not drain it
			be := newTraceBackendProto(t, tc.upstream == "h2c")
			recv, endpoint := startOTLPHTTP(t)
			if tc.protocol == "grpc" {
				recv, endpoint = startOTLPGRPC(t)
			}
			tg := startGateway(t, tracingConfig, tracingVars(be.addr(), endpoint, "protocol", tc.protocol, "upstream", tc.upstream))
			resp := tracedGet(t, tc.client, tg.url("/ok"),
				"Traceparent: 00-"+traceID+"-"+clientSpan+"-01", "Tracestate: congo=t61rcWkgMzE,rojo=00f067aa0ba902b7")
			if resp.StatusCode != 200 || resp.ProtoMajor != map[string]int{"1.1": 1, "2": 2}[tc.clientProto] {
				t.Fatalf("status %d over HTTP/%d", resp.StatusCode, resp.ProtoMajor)
			}
			tp, state := be.last(1)
			gotTrace, upstreamParent, flags := splitParent(t, tp)
			if gotTrace != traceID || upstreamParent == clientSpan || flags != "01" {
				t.Errorf("upstream traceparent %q: want trace %s, a new parent id (not the client's %s), flags 01", tp, traceID, clientSpan)
			}
			if state != "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7" {
				t.Errorf("upstream tracestate %q, want the client's", state)
			}

			spans := recv.waitTrace(t, traceID, 2)
			servers, attempts := spanOfKind(t, spans, tracepb.Span_SPAN_KIND_SERVER), spanOfKind(t, spans, tracepb.Span_SPAN_KIND_CLIENT)
			if len(servers) != 1 || len(attempts) != 1 || len(spans) != 2 {
				t.Fatalf("got %d spans (%d server, %d client), want 1 server and 1 attempt: %+v", len(spans), len(servers), len(attempts), spans)
			}
			srv, att := servers[0], attempts[0]
			if srv.parentID != clientSpan {
				t.Errorf("server span's parent %s, want the client's span %s", srv.parentID, clientSpan)
			}
			if att.parentID != srv.spanID {
				t.Errorf("attempt span's parent %s, want the server span %s", att.parentID, srv.spanID)
			}
			if att.spanID != upstreamParent {
				t.Errorf("attempt span id %s, but the upstream's traceparent names parent %s", att.spanID, upstreamParent)
			}
			if srv.service != "edge-test" || srv.name != "GET all" {
				t.Errorf("server span service %q name %q, want edge-test, \"GET all\"", srv.service, srv.name)
			}
			wantAttrs(t, "server span", srv.attrs, map[string]any{"http.request.method": "GET", "url.path": "/ok",
				"http.response.status_code": int64(200), "network.protocol.version": tc.clientProto, "sluice.route": "all",
				"sluice.upstream": "app", "sluice.attempts": int64(1)})
			wantAttrs(t, "attempt span", att.attrs, map[string]any{"sluice.attempt": int64(1), "sluice.target": be.addr(),
				"sluice.conn.reused": false, "sluice.outcome": "ok", "http.response.status_code": int64(200),
				"sluice.upstream.protocol": tc.upstream, "server.address": "127.0.0.1"})
			if att.start.Before(srv.start) || att.end.After(srv.end) || !att.end.After(att.start) {
				t.Errorf("attempt [%v, %v] not within server span [%v, %v]", att.start, att.end, srv.start, srv.end)
			}
			line := tg.accessLines(1)[0]
			if line["trace_id"] != traceID {
				t.Errorf("access log trace_id = %v, want %s", line["trace_id"], traceID)
			}
		})
	}
}

func wantAttrs(t *testing.T, what string, got, want map[string]any) {
	t.Helper()
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %s = %#v, want %#v", what, k, got[k], v)
		}
	}
}

// TestTracingRetryAndReuse: a request retried after a 503 shows two attempt spans, the
// second with the retry cause, each id being the parent the upstream saw on that attempt;
// a later request on the pooled connection shows reused=true and the connection's idle age.
func TestTracingRetryAndReuse(t *testing.T) {
	be := newTraceBackend(t)
	recv, endpoint := startOTLPHTTP(t)
	tg := startGateway(t, tracingConfig, tracingVars(be.addr(), endpoint))
	c := &http.Client{Timeout: 10 * time.Second}
	if resp := tracedGet(t, c, tg.url("/fail-once")); resp.StatusCode != 200 {
		t.Fatalf("status %d, want 200 after a retry", resp.StatusCode)
	}
	first, _ := be.last(2)
	second, _ := be.last(1)
	traceID, firstParent, _ := splitParent(t, first)
	traceID2, secondParent, _ := splitParent(t, second)
	if traceID2 != traceID || firstParent == secondParent {
		t.Fatalf("attempts sent %q and %q: want one trace, a parent id per attempt", first, second)
	}
	if line := tg.accessLines(1)[0]; line["trace_id"] != traceID {
		t.Errorf("access log trace_id = %v, want %s (the trace the gateway started)", line["trace_id"], traceID)
	}
	spans := recv.waitTrace(t, traceID, 3)
	srv := spanOfKind(t, spans, tracepb.Span_SPAN_KIND_SERVER)[0]
	if srv.parentID != "" {
		t.Errorf("server span of a request without traceparent has parent %q, want a root span", srv.parentID)
	}
	atts := spanOfKind(t, spans, tracepb.Span_SPAN_KIND_CLIENT)
	if len(atts) != 2 {
		t.Fatalf("%d attempt spans, want 2", len(atts))
	}
	if atts[0].attrs["sluice.attempt"] != int64(1) {
		atts[0], atts[1] = atts[1], atts[0]
	}
	wantAttrs(t, "attempt 1", atts[0].attrs, map[string]any{"sluice.attempt": int64(1), "http.response.status_code": int64(503),
		"sluice.outcome": "upstream_retryable_status", "sluice.reason": "upstream_retryable_status"})
	wantAttrs(t, "attempt 2", atts[1].attrs, map[string]any{"sluice.attempt": int64(2), "http.response.status_code": int64(200),
		"sluice.outcome": "ok", "sluice.retry.cause": "status"})
	if _, ok := atts[0].attrs["sluice.retry.cause"]; ok {
		t.Errorf("the first attempt has a retry cause: %v", atts[0].attrs)
	}
	if atts[0].spanID != firstParent || atts[1].spanID != secondParent {
		t.Errorf("attempt span ids %s, %s; upstream saw parents %s, %s", atts[0].spanID, atts[1].spanID, firstParent, secondParent)
	}
	if !atts[0].errStatus || atts[1].errStatus || atts[1].parentID != srv.spanID || atts[0].parentID != srv.spanID {
		t.Errorf("attempt statuses (error %v, %v) or parents (%s, %s; server %s) wrong", atts[0].errStatus, atts[1].errStatus,
			atts[0].parentID, atts[1].parentID, srv.spanID)
	}

	// The connection of the second attempt is pooled; the next request reuses it after an
	// idle gap of at least 30ms.
	time.Sleep(30 * time.Millisecond)
	tracedGet(t, c, tg.url("/ok"))
	tp, _ := be.last(1)
	traceID, _, _ = splitParent(t, tp)
	att := spanOfKind(t, recv.waitTrace(t, traceID, 2), tracepb.Span_SPAN_KIND_CLIENT)[0]
	idle, _ := att.attrs["sluice.conn.idle_ms"].(float64)
	if att.attrs["sluice.conn.reused"] != true || idle < 30 {
		t.Errorf("reused connection: sluice.conn.reused = %v, sluice.conn.idle_ms = %v; want true and >= 30", att.attrs["sluice.conn.reused"], idle)
	}
}

// TestTracingSampling: which requests are exported, what the upstream gets, per sampler and
// inbound header (valid, unsampled, invalid by the W3C rules); a request that is not
// recorded still gets a traceparent upstream, with the sampled flag off.
func TestTracingSampling(t *testing.T) {
	const traceID, clientSpan = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
	valid := func(flags string) string { return "Traceparent: 00-" + traceID + "-" + clientSpan + "-" + flags }
	state := "Tracestate: vendor=value"
	for _, tc := range []struct {
		name, sampler, ratio string
		fields               []string
		export               bool
		sameTrace            bool   // the upstream gets the client's trace id (else a new one)
		flags                string // what the upstream gets
		state                string // the tracestate the upstream gets
	}{
		{"ratio 0, no parent", "parentbased_traceidratio", "0", nil, false, false, "00", ""},
		{"ratio 0, sampled parent", "parentbased_traceidratio", "0", []string{valid("01"), state}, true, true, "01", "vendor=value"},
		{"ratio 1, unsampled parent", "parentbased_traceidratio", "1", []string{valid("00"), state}, false, true, "00", "vendor=value"},
		{"ratio 1, no parent", "parentbased_traceidratio", "1", nil, true, false, "01", ""},
		{"traceidratio ignores the parent's flag", "traceidratio", "1", []string{valid("00")}, true, true, "01", ""},
		{"parent flags beyond sampled", "parentbased_always_off", "0", []string{valid("03")}, true, true, "01", ""},
		{"always_off", "always_off", "1", []string{valid("01")}, false, true, "00", ""},
		{"future version with more fields", "parentbased_always_off", "0",
			[]string{"Traceparent: 01-" + traceID + "-" + clientSpan + "-01-what-comes-next"}, true, true, "01", ""},
		{"upper-case hex", "always_on", "1", []string{"Traceparent: 00-" + strings.ToUpper(traceID) + "-" + clientSpan + "-01", state}, true, false, "01", ""},
		{"version ff", "always_on", "1", []string{"Traceparent: ff-" + traceID + "-" + clientSpan + "-01", state}, true, false, "01", ""},
		{"zero trace id", "always_on", "1", []string{"Traceparent: 00-" + strings.Repeat("0", 32) + "-" + clientSpan + "-01"}, true, false, "01", ""},
		{"zero parent id", "always_on", "1", []string{"Traceparent: 00-" + traceID + "-" + strings.Repeat("0", 16) + "-01"}, true, false, "01", ""},
		{"version 00 with more fields", "always_on", "1", []string{valid("01") + "-extra"}, true, false, "01", ""},
		{"two traceparent fields", "always_on", "1", []string{valid("01"), valid("01")}, true, false, "01", ""},
		{"invalid tracestate dropped", "always_on", "1", []string{valid("01"), "Tracestate: UPPER=x"}, true, true, "01", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := newTraceBackend(t)
			recv, endpoint := startOTLPHTTP(t)
			tg := startGateway(t, tracingConfig, tracingVars(be.addr(), endpoint, "sampler", tc.sampler, "ratio", tc.ratio))
			tracedGet(t, &http.Client{Timeout: 10 * time.Second}, tg.url("/ok"), tc.fields...)
			tp, gotState := be.last(1)
			gotTrace, parent, flags := splitParent(t, tp)
			if (gotTrace == traceID) != tc.sameTrace || flags != tc.flags || parent == clientSpan {
				t.Errorf("upstream traceparent %q: want same trace %v, flags %s, a parent id of the gateway's", tp, tc.sameTrace, tc.flags)
			}
			if gotState != tc.state {
				t.Errorf("upstream tracestate %q, want %q", gotState, tc.state)
			}
			// Shutdown exports whatever was queued: after it, the receiver has all there is.
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			tg.gw.Shutdown(ctx)
			spans := recv.all()
			if exported := len(spans) > 0; exported != tc.export {
				t.Fatalf("exported %d spans, want export %v", len(spans), tc.export)
			}
			line := tg.accessLines(1)[0]
			if !tc.export {
				if _, ok := line["trace_id"]; ok {
					t.Errorf("access log has trace_id %v for a request not recorded", line["trace_id"])
				}
				return
			}
			if len(spans) != 2 || spans[0].traceID != gotTrace || line["trace_id"] != gotTrace {
				t.Errorf("spans %+v, access log trace_id %v; want 2 spans of trace %s", spans, line["trace_id"], gotTrace)
			}
			srv := spanOfKind(t, spans, tracepb.Span_SPAN_KIND_SERVER)
			if want := map[bool]string{true: clientSpan, false: ""}[tc.sameTrace]; len(srv) != 1 || srv[0].parentID != want {
				t.Errorf("server span parent: %+v, want %q", srv, want)
			}
		})
	}
}

// metricValue is the value of counter name with label reason (any labels when reason is "").
func metricValue(t *testing.T, g *Gateway, name, reason string) float64 {
	t.Helper()
	mfs, err := g.Metrics().Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	var v float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					v += m.GetCounter().GetValue()
				}
			}
			if reason == "" {
				v += m.GetCounter().GetValue()
			}
		}
	}
	return v
}

// hungCollector accepts connections and never answers; stop (also run at cleanup) closes
// them, which ends the exports they hold.
func hungCollector(t *testing.T) (endpoint string, stop func()) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	stop = func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String() + "/v1/traces", stop
}

// TestTracingDeadCollector: a collector that refuses connections, or accepts and never
// answers, costs the requests nothing: every request is answered at once, the export queue
// stays bounded, and the spans lost are counted by reason.
func TestTracingDeadCollector(t *testing.T) {
	for _, tc := range []struct {
		name, reason string
		endpoint     func(t *testing.T) (string, func())
	}{
		{"refused", tracing.DropExportFailed, func(t *testing.T) (string, func()) {
			return "http://" + testutil.RefusingAddr(t) + "/v1/traces", func() {}
		}},
		{"never answers", tracing.DropQueueFull, hungCollector},
	} {
		t.Run(tc.name, func(t *testing.T) {
			be := newTraceBackend(t)
			endpoint, stop := tc.endpoint(t)
			tg := startGateway(t, tracingConfig, tracingVars(be.addr(), endpoint, "queue", "4", "batch", "1", "timeout", "30s"))
			t.Cleanup(stop) // before the gateway's shutdown, which then flushes without waiting
			c := &http.Client{Timeout: 10 * time.Second}
			const n = 60
			start := time.Now()
			for i := range n {
				t0 := time.Now()
				if resp := tracedGet(t, c, tg.url("/ok")); resp.StatusCode != 200 {
					t.Fatalf("request %d: status %d", i, resp.StatusCode)
				}
				if d := time.Since(t0); d > time.Second {
					t.Fatalf("request %d took %v with a dead collector", i, d)
				}
			}
			t.Logf("%d requests in %v", n, time.Since(start))
			testutil.WaitFor(t, 5*time.Second, "dropped spans counted", func() bool {
				return metricValue(t, tg.gw, "sluice_tracing_spans_dropped_total", tc.reason) >= 2
			})
			if tc.reason == tracing.DropQueueFull {
				// One request's spans in the blocked export, four in the queue: the rest dropped.
				if d := metricValue(t, tg.gw, "sluice_tracing_spans_dropped_total", tc.reason); d < 2*(n-6) {
					t.Errorf("%v spans dropped for a full queue, want >= %d", d, 2*(n-6))
				}
			}
			if e := metricValue(t, tg.gw, "sluice_tracing_spans_exported_total", ""); e != 0 {
				t.Errorf("%v spans counted as exported to a dead collector", e)
			}
		})
	}
}

// TestTracingReload: tracing can be turned on, changed and off by a reload. Off, the
// client's traceparent reaches the upstream as it came; on, the gateway's own; a changed
// block replaces the tracer (the new service name shows).
func TestTracingReload(t *testing.T) {
	const tp = "00-11111111111111111111111111111111-2222222222222222-01"
	be := newTraceBackend(t)
	recv, endpoint := startOTLPHTTP(t)
	plain := strings.Split(tracingConfig, "tracing:")[0]
	tg := startGateway(t, plain, tracingVars(be.addr(), endpoint))
	c := &http.Client{Timeout: 10 * time.Second}
	get := func() string {
		tracedGet(t, c, tg.url("/ok"), "Traceparent: "+tp)
		got, _ := be.last(1)
		return got
	}
	if got := get(); got != tp {
		t.Fatalf("tracing off: upstream got %q, want the client's %q", got, tp)
	}
	for _, service := range []string{"first", "second"} {
		yaml := strings.Replace(tracingConfig, "edge-test", service, 1)
		if err := tg.gw.Apply(mustParse(t, yaml, tracingVars(be.addr(), endpoint))); err != nil {
			t.Fatal(err)
		}
		got := get()
		if got == tp || !strings.HasPrefix(got, tp[:36]) {
			t.Fatalf("tracing on: upstream got %q, want trace %s with the gateway's parent", got, tp[3:35])
		}
		testutil.WaitFor(t, 5*time.Second, "span of service "+service, func() bool {
			for _, s := range recv.all() {
				if s.service == service {
					return true
				}
			}
			return false
		})
	}
	if err := tg.gw.Apply(mustParse(t, plain, tracingVars(be.addr(), endpoint))); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != tp {
		t.Errorf("tracing off again: upstream got %q, want the client's %q", got, tp)
	}
}

// TestTracingUnsampledAllocatesNothing: with tracing on, a request that is not recorded (a
// ratio of 0, with and without an unsampled traceparent) makes no heap allocation: the
// traceparent is parsed, replaced and sent without the SDK.
func TestTracingUnsampledAllocatesNothing(t *testing.T) {
	if testutil.RaceEnabled {
		t.Skip("the race detector allocates on its own")
	}
	_, endpoint := startOTLPHTTP(t)
	be := rawBackend(t)
	yaml := strings.ReplaceAll(benchConfig(be, 20), "routes:", fmt.Sprintf("tracing: {endpoint: %q, ratio: 0}\nroutes:", endpoint))
	addr := benchGateway(t, yaml, true)
	for _, tc := range []struct{ name, field string }{
		{"no traceparent", ""},
		{"unsampled traceparent", "Traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialClient(t, addr, "/svc19/items")
			defer c.conn.Close()
			c.req = []byte(strings.Replace(string(c.req), "\r\n\r\n", "\r\n"+tc.field+"\r\n", 1))
			if allocs := roundTripAllocs(t, c); allocs >= 0.5 {
				t.Errorf("%.2f heap allocations per unsampled request, want 0", allocs)
			}
		})
	}
}
