package connpool

import (
	"context"
	"testing"

	"sluice/internal/testutil"
)

// BenchmarkGetRelease measures a checkout and release of a pooled conn, the reuse check
// included; BenchmarkCheck prices the check alone.
func BenchmarkGetRelease(b *testing.B) {
	be := testutil.Echo(b)
	p := New(be.Addr(), Options{Enabled: true, Learn: true}, nil)
	defer p.Close(CloseShutdown)
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
}

// BenchmarkCheck measures the reuse check a checkout makes on a live idle connection (the
// MSG_PEEK that finds nothing waiting). Subtract it from BenchmarkGetRelease or
// BenchmarkRoundTrip to price a checkout or an exchange without it.
func BenchmarkCheck(b *testing.B) {
	be := testutil.Echo(b)
	p := New(be.Addr(), Options{Enabled: true, Learn: true}, nil)
	defer p.Close(CloseShutdown)
	c, err := p.Get(context.Background(), true)
	if err != nil {
		b.Fatal(err)
	}
	defer p.Release(c, Outcome{Reusable: true, KeepAliveMax: -1})
	b.ReportAllocs()
	for b.Loop() {
		if why := c.check(); why != "" {
			b.Fatalf("live connection failed the check: %s", why)
		}
	}
}
