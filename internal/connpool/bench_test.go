package connpool

import (
	"context"
	"testing"

	"sluice/internal/testutil"
)

// BenchmarkGetRelease measures a checkout and release of a pooled conn, with and without
// the MSG_PEEK checkout check.
func BenchmarkGetRelease(b *testing.B) {
	for _, bc := range []struct {
		name    string
		noCheck bool
	}{{"check", false}, {"nocheck", true}} {
		b.Run(bc.name, func(b *testing.B) {
			be := testutil.Echo(b)
			p := New(be.Addr(), Options{Enabled: true, Learn: true}, nil)
			defer p.Close(CloseShutdown)
			p.noCheck = bc.noCheck
			ctx := context.Background()
			ok := Outcome{Reusable: true, KeepAliveMax: -1}
			b.ReportAllocs()
			for b.Loop() {
				c, err := p.Get(ctx, true)
				if err != nil {
					b.Fatal(err)
				}
				p.Release(c, ok)
			}
			if p.Snapshot().Counters.Opened != 1 {
				b.Fatal("conn not reused")
			}
		})
	}
}
