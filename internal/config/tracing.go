package config

import (
	"net/url"
	"slices"
	"time"
)

// Tracing configures OpenTelemetry tracing (docs/tracing.md): the gateway reads the W3C
// traceparent of each request, decides whether to record it, sends its own traceparent to
// the upstream on every attempt, and exports a server span per recorded request and a
// client span per attempt over OTLP. Omitted: no tracing, at no cost per request (the
// client's traceparent and tracestate are then forwarded as they came).
type Tracing struct {
	// Endpoint is where spans are exported. For protocol http, the OTLP/HTTP traces URL,
	// such as "http://127.0.0.1:4318/v1/traces" (a URL without a path gets /v1/traces); for
	// protocol grpc, the collector's "http://127.0.0.1:4317" ("https://": TLS). Required.
	Endpoint string `yaml:"endpoint"`
	// Protocol is the OTLP transport: "http" (OTLP/HTTP with protobuf bodies) or "grpc".
	// Omitted: "http".
	Protocol string `yaml:"protocol"`
	// Sampler decides which requests are recorded, with OpenTelemetry's names:
	// "parentbased_traceidratio" (a request with a valid traceparent follows its sampled
	// flag; others are sampled at ratio), "traceidratio" (ratio, whatever the parent says),
	// "parentbased_always_on", "parentbased_always_off", "always_on", "always_off".
	// Omitted: "parentbased_traceidratio".
	Sampler string `yaml:"sampler"`
	// Ratio is the share of requests the ratio samplers record, from 0 to 1, decided from the
	// trace id (as OpenTelemetry's TraceIDRatioBased). Omitted: 0.01; 0 records none of those
	// it decides for.
	Ratio *float64 `yaml:"ratio"`
	// ServiceName is the service.name of the exported spans. Omitted: "sluice".
	ServiceName string `yaml:"service_name"`
	// Headers are sent with every export, such as an API key of a hosted collector.
	// Omitted: none.
	Headers map[string]string `yaml:"headers"`
	// Timeout bounds one export call; a collector that does not answer in time loses that
	// batch (counted). Omitted or 0: 10s.
	Timeout Duration `yaml:"timeout"`
	// QueueSize bounds the recorded requests waiting for export. A request finishing while
	// the queue is full (a slow or dead collector) is not exported, and its spans are counted
	// in sluice_tracing_spans_dropped_total{reason="queue_full"}: requests never wait for the
	// exporter. Omitted or 0: 2048.
	QueueSize int `yaml:"queue_size"`
	// BatchSize is the most spans sent in one export. Omitted or 0: 512.
	BatchSize int `yaml:"batch_size"`
	// BatchTimeout is the longest a finished span waits for its batch to fill before it is
	// exported anyway. Omitted or 0: 5s.
	BatchTimeout Duration `yaml:"batch_timeout"`
}

// Values of [Tracing.Protocol] and [Tracing.Sampler], and the tracing defaults.
const (
	TracingHTTP = "http"
	TracingGRPC = "grpc"

	DefaultTracingSampler      = "parentbased_traceidratio"
	DefaultTracingRatio        = 0.01
	DefaultTracingServiceName  = "sluice"
	DefaultTracingTimeout      = Duration(10 * time.Second)
	DefaultTracingQueueSize    = 2048
	DefaultTracingBatchSize    = 512
	DefaultTracingBatchTimeout = Duration(5 * time.Second)
)

// TracingSamplers are the valid values of [Tracing.Sampler].
var TracingSamplers = []string{"parentbased_traceidratio", "traceidratio", "parentbased_always_on",
	"parentbased_always_off", "always_on", "always_off"}

func defaultTracing(t *Tracing) {
	if t == nil {
		return
	}
	setIfZero(&t.Protocol, TracingHTTP)
	setIfZero(&t.Sampler, DefaultTracingSampler)
	if t.Ratio == nil {
		r := DefaultTracingRatio
		t.Ratio = &r
	}
	setIfZero(&t.ServiceName, DefaultTracingServiceName)
	setIfZero(&t.Timeout, DefaultTracingTimeout)
	setIfZero(&t.QueueSize, DefaultTracingQueueSize)
	setIfZero(&t.BatchSize, DefaultTracingBatchSize)
	setIfZero(&t.BatchTimeout, DefaultTracingBatchTimeout)
}

// RatioValue is the sampling ratio, the default when omitted.
func (t *Tracing) RatioValue() float64 {
	if t.Ratio == nil {
		return DefaultTracingRatio
	}
	return *t.Ratio
}

func (c *Config) validateTracing(p *problems) {
	t := c.Tracing
	if t == nil {
		return
	}
	switch u, err := url.Parse(t.Endpoint); {
	case t.Endpoint == "":
		p.add("tracing.endpoint", "required, such as \"http://127.0.0.1:4318/v1/traces\" (protocol http) or \"http://127.0.0.1:4317\" (grpc)")
	case err != nil || u.Scheme != "http" && u.Scheme != "https" || u.Host == "":
		p.add("tracing.endpoint", "%q is not an http:// or https:// URL with a host", t.Endpoint)
	case t.Protocol == TracingGRPC && u.Path != "" && u.Path != "/":
		p.add("tracing.endpoint", "a grpc endpoint has no path (got %q)", u.Path)
	}
	if t.Protocol != "" && t.Protocol != TracingHTTP && t.Protocol != TracingGRPC {
		p.add("tracing.protocol", "unknown protocol %q: want http or grpc", t.Protocol)
	}
	if t.Sampler != "" && !slices.Contains(TracingSamplers, t.Sampler) {
		p.add("tracing.sampler", "unknown sampler %q: want one of %v", t.Sampler, TracingSamplers)
	}
	if r := t.RatioValue(); r < 0 || r > 1 || r != r {
		p.add("tracing.ratio", "must be between 0 and 1 (got %v)", r)
	}
	for name, v := range t.Headers {
		if !isToken(name) {
			p.add("tracing.headers", "%q is not a valid header name", name)
		}
		for i := 0; i < len(v); i++ {
			if c := v[i]; c < 0x20 && c != '\t' || c == 0x7f {
				p.add("tracing.headers."+name, "control character in the value")
				break
			}
		}
	}
	for f, v := range map[string]int64{"timeout": int64(t.Timeout), "queue_size": int64(t.QueueSize),
		"batch_size": int64(t.BatchSize), "batch_timeout": int64(t.BatchTimeout)} {
		if v < 0 {
			p.add("tracing."+f, "must not be negative")
		}
	}
}
