package gateway

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"sluice/internal/accesslog"
	"sluice/internal/config"
)

// changeBenchConfig is n routes on one upstream, like cluster's TestScale (a path prefix
// each), every tenth with a plugin of its own so that chains are part of the cost.
func changeBenchConfig(backend string, n int) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "listeners: [{address: 127.0.0.1:0}]\nlog: {access: \"off\"}\nadmin: {enabled: false}\n"+
		"upstreams:\n  - {id: app, targets: [{address: %q}]}\nroutes:\n", backend)
	for i := range n {
		fmt.Fprintf(&sb, "  - {id: r%05d, match: {path_prefix: /r%05d}, upstream: app", i, i)
		if i%10 == 0 {
			sb.WriteString(", plugins: [{name: response-headers, config: {set: {X-R: r}}}]")
		}
		sb.WriteString("}\n")
	}
	return sb.String()
}

// BenchmarkApplyChange measures ApplyChange of one changed route at n routes, the gateway's
// part of a cluster change (two configs that differ in one route, applied in turn; the
// copy of the route list a cluster node makes per change is not in it: TestScale in
// internal/cluster measures the whole). The CPU per change should not grow with n.
func BenchmarkApplyChange(b *testing.B) {
	for _, n := range []int{100, 1000, 10000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			cfg, err := config.Parse("bench.yaml", []byte(changeBenchConfig("127.0.0.1:9", n)))
			if err != nil {
				b.Fatal(err)
			}
			access := accesslog.New(io.Discard)
			defer access.Close()
			gw := New(slog.New(slog.DiscardHandler), access)
			if err := gw.Apply(cfg); err != nil {
				b.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				gw.Shutdown(ctx)
			}()
			// Two configs that differ in one route, applied in turn: the change alone,
			// without the copy of the route list a cluster node makes for each change.
			a := gw.Current().Config
			b2 := *a
			b2.Routes = slices.Clone(a.Routes)
			r := *a.Routes[7%n] // a's route is not modified: a is serving
			r.Rewrite.AddPrefix = "/v2"
			b2.Routes[7%n] = &r
			cfgs := [2]*config.Config{a, &b2}
			b.ReportAllocs()
			cpu0, cpuOK := cpuTime()
			k := 0
			for b.Loop() {
				from, next := cfgs[k%2], cfgs[(k+1)%2]
				k++
				if err := gw.ApplyChange(from, next, config.Change{Routes: []*config.Route{next.Routes[7%n]}}); err != nil {
					b.Fatal(err)
				}
			}
			if cpu1, ok := cpuTime(); ok && cpuOK {
				b.ReportMetric(float64(cpu1-cpu0)/float64(b.N), "cpu-ns/op")
			}
		})
	}
}
