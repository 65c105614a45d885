package gateway

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// BenchmarkTracingInterleaved is the cost of tracing against the same gateway without a
// tracing block, side by side. Rows: a ratio of 0 (every request parsed, decided and given
// a traceparent, none recorded), 0.01 (the bound: <= 3% req/s) and 1 (every request
// recorded and exported, to show what recording costs). Requests carry no traceparent: the
// ratio decides. The OTLP/HTTP receiver runs in this process, so its work (decoding the
// exports) counts against the tracing rows.
//
// On a shared machine single requests vary by several times, so the comparison is made in
// blocks: 50 requests through plain, then 50 through the row's gateway, then the other way
// round (ABBA), and the statistic is the median over blocks of the row's time over plain's
// ("pct-over-plain", median; "pct-p25"/"pct-p75" its spread). A load spike lands in a few
// blocks and moves the median little.
//
//	SLUICE_BENCH_PORT_BASE=23000 go test ./internal/gateway -run '^$' -bench TracingInterleaved -benchtime 400x -count 3
func BenchmarkTracingInterleaved(b *testing.B) {
	_, endpoint := startOTLPHTTP(b)
	be := rawBackendOn(b, benchPort(0))
	plainAddr := benchGateway(b, pluginBenchConfig(b, benchPort(1), be, ""), true)
	for i, ratio := range []string{"0", "0.01", "1"} {
		b.Run("ratio="+ratio, func(b *testing.B) {
			cfg := strings.Replace(pluginBenchConfig(b, benchPort(10+i), be, ""), "routes:",
				fmt.Sprintf("tracing: {endpoint: %q, ratio: %s, batch_timeout: 100ms}\nroutes:", endpoint, ratio), 1)
			addr := benchGateway(b, cfg, true)
			plain, with := dialClient(b, plainAddr, "/"), dialClient(b, addr, "/")
			defer plain.conn.Close()
			defer with.conn.Close()
			interleaveBlocks(b, plain, with, 50)
		})
	}
}

// interleaveBlocks runs b.N blocks of n requests through plain and with each, alternating
// which goes first, and reports the median and quartiles of with's time over plain's per
// block, and each side's median ns per request.
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
	var ratios, tPlain, tWith []float64
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
		tPlain, tWith = append(tPlain, float64(p)/float64(n)), append(tWith, float64(w)/float64(n))
	}
	q := func(xs []float64, f float64) float64 {
		s := slices.Sorted(slices.Values(xs))
		return s[int(f*float64(len(s)-1))]
	}
	b.ReportMetric(100*(q(ratios, 0.5)-1), "pct-over-plain")
	b.ReportMetric(100*(q(ratios, 0.25)-1), "pct-p25")
	b.ReportMetric(100*(q(ratios, 0.75)-1), "pct-p75")
	b.ReportMetric(q(tPlain, 0.5), "plain-ns/req")
	b.ReportMetric(q(tWith, 0.5), "row-ns/req")
}
