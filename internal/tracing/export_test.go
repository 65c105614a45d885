package tracing

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"sluice/internal/config"
)

// cpuTime is the process's CPU time (user and system) in ns: on a shared machine a wall
// clock counts the waits for a CPU too.
func cpuTime() int64 {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

type countObserver struct{ exported, dropped atomic.Int64 }

func (o *countObserver) SpansExported(n int)          { o.exported.Add(int64(n)) }
func (o *countObserver) SpansDropped(_ string, n int) { o.dropped.Add(int64(n)) }

// BenchmarkRecordedRequest is the export side's cost of one recorded request (a server span
// and one attempt span): building the SDK spans and exporting them over OTLP/HTTP in batches
// of 512 spans to a loopback sink that discards them (the sink's own work included). It runs
// on the export goroutine, not the request's; at a ratio r a request costs r times this.
// "cpu-ns/op" is the process's CPU time per request (the sink's and the loop's included).
//
//	go test ./internal/tracing -run '^$' -bench RecordedRequest -benchtime 20000x -count 3
func BenchmarkRecordedRequest(b *testing.B) {
	sink := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer sink.Close()
	cfg := &config.Tracing{Endpoint: sink.URL + "/v1/traces", Protocol: config.TracingHTTP, Sampler: SamplerAlwaysOn,
		ServiceName: "bench", Timeout: config.Duration(10 * time.Second), QueueSize: 1 << 20, BatchSize: 512,
		BatchTimeout: config.Duration(time.Second)}
	obs := &countObserver{}
	tr, err := New(cfg, obs, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	// Not b.Loop: the timed part must include the Shutdown below, which waits for the
	// export goroutine to finish the work handed to it.
	for range b.N {
		tr.Submit(&Request{TraceID: NewTraceID(), SpanID: NewSpanID(), Start: now, End: now.Add(time.Millisecond),
			Method: "GET", Host: "api.example.com", Path: "/users/7", ClientIP: "10.0.0.9", RequestID: "0123456789abcdef",
			Protocol: "1.1", Route: "users", Upstream: "users", Status: 200,
			Attempts: []Attempt{{SpanID: NewSpanID(), Start: now, End: now.Add(time.Millisecond), Target: "10.0.0.5:8080",
				ConnID: 42, Reused: true, IdleAge: time.Second, Outcome: "ok", Status: 200, Protocol: "http1"}}})
	}
	if err := tr.Shutdown(context.Background()); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/op")
	if got := obs.exported.Load(); got != 2*int64(b.N) || obs.dropped.Load() != 0 {
		b.Fatalf("exported %d spans, dropped %d; want %d, 0", got, obs.dropped.Load(), 2*b.N)
	}
}
