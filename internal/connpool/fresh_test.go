package connpool

import (
	"context"
	"testing"

	"sluice/internal/testutil"
)

// TestGetFreshDials: GetFresh never hands out a pooled connection, even when one is idle.
func TestGetFreshDials(t *testing.T) {
	be := testutil.Echo(t)
	p := New(be.Addr(), Options{Enabled: true, Learn: true}, nil)
	defer p.Close(CloseShutdown)
	ctx := context.Background()
	c, err := p.Get(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	p.Release(c, Outcome{Reusable: true, KeepAliveMax: -1})
	f, err := p.GetFresh(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if f.Reused || f.ID == c.ID {
		t.Fatalf("GetFresh returned pooled conn %d (reused %v)", f.ID, f.Reused)
	}
	p.Release(f, Outcome{Reusable: true, KeepAliveMax: -1})
	if got := p.Snapshot().Counters.Opened; got != 2 {
		t.Fatalf("opened %d connections, want 2", got)
	}
}
