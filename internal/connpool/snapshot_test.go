package connpool

import (
	"net/http"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestSnapshotLifeFacts: a live connection's snapshot says its idle age at its last checkout,
// and a closed one's life record when its last request ended, so a reader (the dashboard's
// pool timeline) can place each reuse and tell at what idle age the backend closed it.
func TestSnapshotLifeFacts(t *testing.T) {
	b := testutil.IdleCloser(t, 300*time.Millisecond)
	p := newPool(t, b.Addr(), func(o *Options) { o.SweepInterval = time.Hour })
	mustOK(t, exchange(p, http.MethodGet, "1"))
	time.Sleep(100 * time.Millisecond)
	mustOK(t, exchange(p, http.MethodGet, "2"))
	s := p.Snapshot()
	if len(s.Conns) != 1 {
		t.Fatalf("conns %+v, want 1", s.Conns)
	}
	c := s.Conns[0]
	if c.Served != 2 || c.LastIdleAge < 100*time.Millisecond || c.LastIdleAge > 250*time.Millisecond {
		t.Errorf("conn %+v: want 2 served, last checkout at about 100 ms idle", c)
	}
	lastUsed := c.LastUsed
	testutil.WaitFor(t, 5*time.Second, "the backend to close", func() bool { return b.Open() == 0 })
	mustOK(t, exchange(p, http.MethodGet, "3")) // the reuse check finds the FIN
	s = p.Snapshot()
	if len(s.History) != 1 {
		t.Fatalf("history %+v, want 1 record", s.History)
	}
	h := s.History[0]
	// The reuse check found it dead at checkout: that checkout's idle age is the record's.
	closedIdle := h.Closed.Sub(h.LastUsed)
	if h.Reason != CloseBackendClosedIdle || !h.LastUsed.Equal(lastUsed) || h.LastIdleAge > closedIdle || h.LastIdleAge < closedIdle-50*time.Millisecond {
		t.Errorf("record %+v; want backend_closed_idle, last used %v, last idle age that of the failed checkout", h, lastUsed)
	}
	if idle := h.Closed.Sub(h.LastUsed); idle < 300*time.Millisecond {
		t.Errorf("closed at idle %v, before the backend's 300 ms", idle)
	}
}
