package tracing

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/instrumentation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"sluice/internal/config"
)

// Reasons of [Observer.SpansDropped].
const (
	DropQueueFull    = "queue_full"    // the export queue was full: the collector is slow or down
	DropExportFailed = "export_failed" // the collector refused the batch or did not answer in time
	DropShutdown     = "shutdown"      // still queued when the tracer was shut down past its deadline
)

// Observer is told what became of recorded spans; internal/metrics implements it.
type Observer interface {
	SpansExported(n int)
	SpansDropped(reason string, n int)
}

// Tracer decides which requests are recorded and exports the spans of those that are. One
// goroutine batches and exports; requests hand it a finished [Request] without waiting.
type Tracer struct {
	sampler      Sampler
	queue        chan *Request
	exp          sdktrace.SpanExporter
	res          *resource.Resource
	scope        instrumentation.Scope
	batchSize    int
	batchTimeout time.Duration
	timeout      time.Duration
	obs          Observer
	log          *slog.Logger

	stop     chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	lastWarn time.Time // of an export failure (the worker's own)
	failed   int       // export failures since lastWarn
}

// New builds the tracer of cfg (defaults applied) and starts its export goroutine; obs
// (nil: none) counts the exported and dropped spans.
func New(cfg *config.Tracing, obs Observer, log *slog.Logger) (*Tracer, error) {
	s, ok := NewSampler(cfg.Sampler, cfg.RatioValue())
	if !ok {
		return nil, fmt.Errorf("tracing.sampler: unknown sampler %q", cfg.Sampler)
	}
	exp, err := newExporter(cfg)
	if err != nil {
		return nil, err
	}
	return start(cfg, s, exp, obs, log), nil
}

// start runs the export goroutine of a tracer on exp.
func start(cfg *config.Tracing, s Sampler, exp sdktrace.SpanExporter, obs Observer, log *slog.Logger) *Tracer {
	if obs == nil {
		obs = nopObserver{}
	}
	t := &Tracer{
		sampler:      s,
		queue:        make(chan *Request, max(cfg.QueueSize, 1)),
		exp:          exp,
		res:          resource.NewSchemaless(attribute.String("service.name", cfg.ServiceName)),
		scope:        instrumentation.Scope{Name: "sluice"},
		batchSize:    max(cfg.BatchSize, 1),
		batchTimeout: max(cfg.BatchTimeout.D(), time.Millisecond),
		timeout:      max(cfg.Timeout.D(), time.Millisecond),
		obs:          obs,
		log:          log.With("component", "tracing"),
		stop:         make(chan struct{}),
		done:         make(chan struct{}),
	}
	go t.run()
	return t
}

type nopObserver struct{}

func (nopObserver) SpansExported(int)        {}
func (nopObserver) SpansDropped(string, int) {}

// newExporter is the OTLP exporter of cfg. Its own retries are off: a batch gets one try
// bounded by cfg.Timeout, so a dead collector holds the export goroutine no longer than
// that, and what it loses is counted instead of piling up.
func newExporter(cfg *config.Tracing) (sdktrace.SpanExporter, error) {
	ctx := context.Background()
	u, err := url.Parse(cfg.Endpoint)
	if err != nil {
		return nil, fmt.Errorf("tracing.endpoint: %w", err)
	}
	if cfg.Protocol == config.TracingGRPC {
		opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(u.Host), otlptracegrpc.WithTimeout(cfg.Timeout.D()),
			otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: false}), otlptracegrpc.WithHeaders(cfg.Headers)}
		if u.Scheme == "http" {
			opts = append(opts, otlptracegrpc.WithInsecure())
		}
		return otlptracegrpc.New(ctx, opts...)
	}
	path := u.Path
	if path == "" || path == "/" {
		path = "/v1/traces"
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpoint(u.Host), otlptracehttp.WithURLPath(path),
		otlptracehttp.WithTimeout(cfg.Timeout.D()), otlptracehttp.WithRetry(otlptracehttp.RetryConfig{Enabled: false}),
		otlptracehttp.WithHeaders(cfg.Headers)}
	if u.Scheme == "http" {
		opts = append(opts, otlptracehttp.WithInsecure())
	}
	return otlptracehttp.New(ctx, opts...)
}

// Sampler is the tracer's sampling rule.
func (t *Tracer) Sampler() Sampler { return t.sampler }

// Submit hands a finished, recorded request to the export goroutine. It never blocks: with
// the queue full, the request's spans are dropped and counted.
func (t *Tracer) Submit(r *Request) {
	select {
	case t.queue <- r:
	default:
		t.obs.SpansDropped(DropQueueFull, 1+len(r.Attempts))
	}
}

// Shutdown stops the export goroutine after it exported what was queued, bounded by ctx,
// and shuts the exporter down. Submit may still be called: what it queues is not exported.
func (t *Tracer) Shutdown(ctx context.Context) error {
	t.stopOnce.Do(func() { close(t.stop) })
	select {
	case <-t.done:
	case <-ctx.Done():
		return errors.Join(ctx.Err(), t.exp.Shutdown(ctx))
	}
	return t.exp.Shutdown(ctx)
}

// run batches queued requests into exports of at most batchSize spans, exporting a partial
// batch batchTimeout after its first span came.
func (t *Tracer) run() {
	defer close(t.done)
	batch := make([]sdktrace.ReadOnlySpan, 0, t.batchSize)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	flush := func() {
		timer.Stop()
		if len(batch) > 0 {
			t.export(batch)
			clear(batch)
			batch = batch[:0]
		}
	}
	add := func(r *Request) {
		if len(batch) == 0 {
			timer.Reset(t.batchTimeout)
		}
		for _, s := range r.spans(t.res, t.scope) {
			batch = append(batch, s)
			if len(batch) >= t.batchSize {
				flush()
			}
		}
	}
	for {
		select {
		case r := <-t.queue:
			add(r)
		case <-timer.C:
			flush()
		case <-t.stop:
			for {
				select {
				case r := <-t.queue:
					add(r)
					continue
				default:
				}
				flush()
				return
			}
		}
	}
}

// export sends one batch, bounded by the export timeout, and counts the outcome.
func (t *Tracer) export(batch []sdktrace.ReadOnlySpan) {
	ctx, cancel := context.WithTimeout(context.Background(), t.timeout)
	err := t.exp.ExportSpans(ctx, batch)
	cancel()
	if err == nil {
		t.obs.SpansExported(len(batch))
		return
	}
	t.obs.SpansDropped(DropExportFailed, len(batch))
	t.failed++
	if now := time.Now(); now.Sub(t.lastWarn) >= 30*time.Second {
		t.log.Warn("span export failed; the spans are dropped (sluice_tracing_spans_dropped_total)",
			"spans", len(batch), "failures_since_last_warning", t.failed, "error", err)
		t.lastWarn, t.failed = now, 0
	}
}

// Request is what a recorded request leaves for export: the gateway's server span and one
// client span per attempt. Its strings must not alias request buffers.
type Request struct {
	TraceID TraceID
	SpanID  SpanID // the gateway's server span
	Parent  SpanID // the caller's span; zero for a trace the gateway started
	Start   time.Time
	End     time.Time

	Method, Host, Path, ClientIP, RequestID string
	// Protocol is the client's HTTP version: "1.0", "1.1" or "2".
	Protocol string
	Route    string
	Upstream string
	Status   int
	// Reason is the gateway's reason code of a request it failed or answered itself.
	Reason string

	Attempts []Attempt
}

// Attempt is one try of a request towards a target: a client span.
type Attempt struct {
	SpanID SpanID
	// Start is when the attempt began (connection checkout or dial); End when it ended,
	// zero when unknown (the span then ends when the next attempt or the request does).
	Start, End time.Time
	Target     string
	ConnID     uint64
	Reused     bool
	IdleAge    time.Duration
	// Outcome is "ok" or the attempt's reason code.
	Outcome string
	Status  int
	// RetryCause is the retry condition that made this attempt (the previous one's
	// failure), "" for the first.
	RetryCause string
	// Protocol is how the gateway spoke to the target: "http1", "h2c" or "h2".
	Protocol string
}

// spans renders r as SDK spans (tracetest.SpanStub is the SDK's way to build a
// ReadOnlySpan from plain values: the gateway chose the ids and times itself).
func (r *Request) spans(res *resource.Resource, scope instrumentation.Scope) []sdktrace.ReadOnlySpan {
	tid := trace.TraceID(r.TraceID)
	server := trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID(r.SpanID), TraceFlags: trace.FlagsSampled})
	var parent trace.SpanContext
	if !r.Parent.IsZero() {
		parent = trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID(r.Parent), TraceFlags: trace.FlagsSampled, Remote: true})
	}
	name := r.Method
	if r.Route != "" {
		name += " " + r.Route
	}
	attrs := []attribute.KeyValue{
		attribute.String("http.request.method", r.Method),
		attribute.String("url.path", r.Path),
		attribute.String("server.address", hostOnly(r.Host)),
		attribute.String("client.address", r.ClientIP),
		attribute.String("network.protocol.version", r.Protocol),
		attribute.Int("http.response.status_code", r.Status),
		attribute.String("sluice.request_id", r.RequestID),
		attribute.Int("sluice.attempts", len(r.Attempts)),
	}
	if r.Route != "" {
		attrs = append(attrs, attribute.String("sluice.route", r.Route), attribute.String("sluice.upstream", r.Upstream))
	}
	var st sdktrace.Status
	if r.Reason != "" {
		attrs = append(attrs, attribute.String("sluice.reason", r.Reason))
	}
	if r.Status >= 500 {
		st = sdktrace.Status{Code: codes.Error, Description: r.Reason}
	}
	out := make([]sdktrace.ReadOnlySpan, 0, 1+len(r.Attempts))
	out = append(out, tracetest.SpanStub{
		Name: name, SpanContext: server, Parent: parent, SpanKind: trace.SpanKindServer,
		StartTime: r.Start, EndTime: r.End, Attributes: attrs, Status: st,
		ChildSpanCount: len(r.Attempts), Resource: res, InstrumentationScope: scope,
	}.Snapshot())
	for i := range r.Attempts {
		a := &r.Attempts[i]
		end := a.End
		if end.IsZero() {
			end = r.End
			if i+1 < len(r.Attempts) {
				end = r.Attempts[i+1].Start
			}
		}
		out = append(out, tracetest.SpanStub{
			Name: "upstream " + r.Upstream, SpanKind: trace.SpanKindClient, Parent: server,
			SpanContext: trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: trace.SpanID(a.SpanID), TraceFlags: trace.FlagsSampled}),
			StartTime:   a.Start, EndTime: end, Attributes: a.attributes(i, r.Method), Status: a.status(),
			Resource: res, InstrumentationScope: scope,
		}.Snapshot())
	}
	return out
}

func (a *Attempt) attributes(i int, method string) []attribute.KeyValue {
	host, port := splitHostPort(a.Target)
	attrs := []attribute.KeyValue{
		attribute.Int("sluice.attempt", i+1),
		attribute.String("http.request.method", method),
		attribute.String("sluice.target", a.Target),
		attribute.String("server.address", host),
		attribute.String("server.port", port),
		attribute.String("sluice.outcome", a.Outcome),
		attribute.String("sluice.upstream.protocol", a.Protocol),
		attribute.String("network.protocol.version", protocolVersion(a.Protocol)),
	}
	if a.ConnID != 0 {
		attrs = append(attrs, attribute.Int64("sluice.conn.id", int64(a.ConnID)),
			attribute.Bool("sluice.conn.reused", a.Reused))
		if a.Reused {
			attrs = append(attrs, attribute.Float64("sluice.conn.idle_ms", float64(a.IdleAge.Microseconds())/1000))
		}
	}
	if a.Outcome != "ok" {
		attrs = append(attrs, attribute.String("sluice.reason", a.Outcome))
	}
	if a.Status != 0 {
		attrs = append(attrs, attribute.Int("http.response.status_code", a.Status))
	}
	if a.RetryCause != "" {
		attrs = append(attrs, attribute.String("sluice.retry.cause", a.RetryCause))
	}
	return attrs
}

func (a *Attempt) status() sdktrace.Status {
	if a.Outcome == "ok" {
		return sdktrace.Status{}
	}
	return sdktrace.Status{Code: codes.Error, Description: a.Outcome}
}

func protocolVersion(p string) string {
	if p == "h2" || p == "h2c" {
		return "2"
	}
	return "1.1"
}

func hostOnly(h string) string {
	host, _ := splitHostPort(h)
	return host
}

// splitHostPort splits "host:port" ("[v6]:port"); a value without a port is all host.
func splitHostPort(hp string) (host, port string) {
	i := strings.LastIndexByte(hp, ':')
	if i < 0 || strings.IndexByte(hp[i:], ']') >= 0 {
		return strings.Trim(hp, "[]"), ""
	}
	return strings.Trim(hp[:i], "[]"), hp[i+1:]
}
