package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"sluice/internal/config"
	"sluice/internal/h1"
	"sluice/internal/plugin"
	"sluice/internal/proxy"
	"sluice/internal/tracing"
)

// BenchmarkTracingInterleaved is the cost of tracing against the same gateway without a
// tracing block, side by side. Rows: a ratio of 0 (every request parsed, decided and given
// a traceparent, none recorded), 0.01 (the bound: <= 3% req/s) and 1 (every request
// recorded and exported, to show what recording costs). Requests carry no traceparent: the
// ratio decides. The OTLP/HTTP sink (otlpSink) runs in this process.
//
// On a shared machine single requests vary by several times, so the comparison is made in
// blocks: 50 requests through plain, then 50 through the row's gateway, then the other way
// round (ABBA), and the statistic is the median over blocks of the row's time over plain's
// ("pct-over-plain", median; "pct-p25"/"pct-p75" its spread). A load spike lands in a few
// blocks and moves the median little.
//
//	SLUICE_BENCH_PORT_BASE=23000 go test ./internal/gateway -run '^$' -bench TracingInterleaved -benchtime 400x -count 3
func BenchmarkTracingInterleaved(b *testing.B) {
	endpoint := otlpSink(b)
	be := rawBackendOn(b, benchPort(0))
	plainAddr := benchGateway(b, pluginBenchConfig(b, benchPort(1), be, ""), true)
	for i, ratio := range []string{"0", "0.01", "1"} {
		b.Run("ratio="+ratio, func(b *testing.B) {
			addr := benchGateway(b, tracedBenchConfig(b, benchPort(10+i), be, endpoint, ratio, "100ms"), true)
			plain, with := dialClient(b, plainAddr, "/"), dialClient(b, addr, "/")
			defer plain.conn.Close()
			defer with.conn.Close()
			interleaveBlocks(b, plain, with, 50)
		})
	}
}

// tracedBenchConfig is pluginBenchConfig with tracing to endpoint at ratio, batches sent
// every batchTimeout.
func tracedBenchConfig(b *testing.B, addr, be, endpoint, ratio, batchTimeout string) string {
	return strings.Replace(pluginBenchConfig(b, addr, be, ""), "routes:",
		fmt.Sprintf("tracing: {endpoint: %q, ratio: %s, batch_timeout: %s}\nroutes:", endpoint, ratio, batchTimeout), 1)
}

// interleaveBlocks runs b.N blocks of n requests through plain and with each, alternating
// which goes first, and reports the median and quartiles of with's time over plain's per
// block, the median of with's extra time per request over plain's in the same pair of
// blocks ("extra-ns/req"), and each side's median ns per request.
func interleaveBlocks(b *testing.B, plain, with *rawClient, n int) {
	block := func(c *rawClient) time.Duration {
		t0 := time.Now()
		for range n {
			if err := c.roundTrip(); err != nil {
				b.Fatal(err)
			}
		}
		return time.Since(t0)
	}
	block(plain) // warm-up: pools, caches
	block(with)
	var ratios, extra, tPlain, tWith []float64
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		var p, w time.Duration
		if i%2 == 0 {
			p, w = block(plain), block(with)
		} else {
			w, p = block(with), block(plain)
		}
		i++
		ratios = append(ratios, float64(w)/float64(p))
		extra = append(extra, float64(w-p)/float64(n))
		tPlain, tWith = append(tPlain, float64(p)/float64(n)), append(tWith, float64(w)/float64(n))
	}
	q := func(xs []float64, f float64) float64 {
		s := slices.Sorted(slices.Values(xs))
		return s[int(f*float64(len(s)-1))]
	}
	b.ReportMetric(100*(q(ratios, 0.5)-1), "pct-over-plain")
	b.ReportMetric(100*(q(ratios, 0.25)-1), "pct-p25")
	b.ReportMetric(100*(q(ratios, 0.75)-1), "pct-p75")
	b.ReportMetric(q(extra, 0.5), "extra-ns/req")
	b.ReportMetric(q(tPlain, 0.5), "plain-ns/req")
	b.ReportMetric(q(tWith, 0.5), "row-ns/req")
}

// BenchmarkTracingCPU is the CPU time per proxied request with tracing against without,
// on a machine shared with other work (where wall time counts the waits for a CPU too).
// Each iteration runs a phase of 2,000 requests through the plain gateway and one through
// the row's, in alternating order, each phase followed by a 30ms pause in which the export
// goroutine finishes (batch_timeout is 10ms), and takes the process's CPU time of each
// phase (the raw client, raw backend and OTLP sink in this process included, on both
// sides). Reported: the median, min and max over iterations of row/plain - 1 in percent.
//
//	SLUICE_BENCH_PORT_BASE=23000 go test ./internal/gateway -run '^$' -bench TracingCPU -benchtime 10x -count 3
func BenchmarkTracingCPU(b *testing.B) {
	endpoint := otlpSink(b)
	be := rawBackendOn(b, benchPort(20))
	plainAddr := benchGateway(b, pluginBenchConfig(b, benchPort(21), be, ""), true)
	for i, ratio := range []string{"0", "0.01", "1"} {
		b.Run("ratio="+ratio, func(b *testing.B) {
			addr := benchGateway(b, tracedBenchConfig(b, benchPort(30+i), be, endpoint, ratio, "10ms"), true)
			plain, with := dialClient(b, plainAddr, "/"), dialClient(b, addr, "/")
			defer plain.conn.Close()
			defer with.conn.Close()
			phase := func(c *rawClient) int64 {
				c0 := processCPU()
				for range 2000 {
					if err := c.roundTrip(); err != nil {
						b.Fatal(err)
					}
				}
				time.Sleep(30 * time.Millisecond)
				return int64(processCPU() - c0)
			}
			phase(plain) // warm-up
			phase(with)
			var pct []float64
			var sumPlain, sumWith int64
			n := 0
			for b.Loop() {
				var p, w int64
				if n%2 == 0 {
					p, w = phase(plain), phase(with)
				} else {
					w, p = phase(with), phase(plain)
				}
				n++
				sumPlain, sumWith = sumPlain+p, sumWith+w
				pct = append(pct, 100*(float64(w)/float64(p)-1))
			}
			slices.Sort(pct)
			b.ReportMetric(pct[len(pct)/2], "cpu-pct-over-plain")
			b.ReportMetric(pct[0], "pct-min")
			b.ReportMetric(pct[len(pct)-1], "pct-max")
			b.ReportMetric(float64(sumPlain)/float64(2000*n), "plain-cpu-ns/req")
			b.ReportMetric(float64(sumWith)/float64(2000*n), "row-cpu-ns/req")
		})
	}
}

// otlpSink is an OTLP/HTTP endpoint that reads each export and accepts it without decoding
// it (as bench/otlpsink): the exporter's whole path runs, a collector's own work does not.
func otlpSink(b *testing.B) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	b.Cleanup(srv.Close)
	return srv.URL + "/v1/traces"
}

// BenchmarkTraceRequestPath is the tracing work of one request that is not recorded, on the
// request's goroutine: read the trace context among five header fields, decide, write the
// upstream traceparent, reset. rec and the header are reused as the pooled reqState's are.
//
//	go test ./internal/gateway -run '^$' -bench TraceRequestPath -count 3
func BenchmarkTraceRequestPath(b *testing.B) {
	tr, err := tracing.New(&config.Tracing{Endpoint: "http://127.0.0.1:1/v1/traces", Protocol: "http",
		Sampler: "parentbased_traceidratio", Ratio: new(float64), QueueSize: 1, BatchSize: 1,
		BatchTimeout: config.Duration(time.Second), Timeout: config.Duration(time.Second)}, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		b.Fatal(err)
	}
	defer tr.Shutdown(context.Background())
	for _, withParent := range []bool{false, true} {
		b.Run(fmt.Sprintf("inbound-traceparent=%v", withParent), func(b *testing.B) {
			var h h1.Header
			var rec proxy.Record
			var ts traceState
			inner := (&plugin.Request{}).Hooks()
			dst := make([]byte, 0, 256)
			b.ReportAllocs()
			for b.Loop() {
				h.Reset()
				h.Add("User-Agent", "bench")
				h.Add("Accept", "*/*")
				h.Add("Host", "api.example.com")
				h.Add("Authorization", "Bearer x")
				if withParent {
					h.Add("Traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00")
				}
				ts.begin(tr, &h, &rec)
				hk := ts.hooks(inner)
				dst = hk.AppendUpstream(dst[:0], 0)
				ts.end()
			}
		})
	}
}
