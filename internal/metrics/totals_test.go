package metrics

import (
	"testing"
	"time"

	"sluice/internal/reason"
)

// TestTotals: the totals the dashboard samples are the counters the requests recorded.
func TestTotals(t *testing.T) {
	m := New(nil)
	users, none := m.Route("users", "api"), m.Route("", "")
	for range 3 {
		users.Request(200, 3*time.Millisecond, time.Millisecond, true)
	}
	users.Request(502, 70*time.Millisecond, time.Millisecond, true)
	none.Request(404, time.Millisecond/2, 0, false)
	m.GatewayError(reason.NoRoute)
	m.GatewayError(reason.NoRoute)
	got := m.Totals()
	if got.Requests["users"] != 4 || got.Requests[""] != 1 {
		t.Errorf("requests %v, want users 4 and no route 1", got.Requests)
	}
	if got.Errors[string(reason.NoRoute)] != 2 || len(got.Errors) != 1 {
		t.Errorf("errors %v, want no_route 2 only", got.Errors)
	}
	if got.DurationCount != 5 || len(got.Buckets) != len(got.Bounds) {
		t.Fatalf("durations: %d counted, %d buckets for %d bounds", got.DurationCount, len(got.Buckets), len(got.Bounds))
	}
	// 0.5 ms in the first bucket (1 ms); three 3 ms at 5 ms; 70 ms at 100 ms.
	want := map[float64]uint64{0.001: 1, 0.005: 4, 0.05: 4, 0.1: 5, 60: 5}
	for i, b := range got.Bounds {
		if w, ok := want[b]; ok && got.Buckets[i] != w {
			t.Errorf("bucket le=%v: %d, want %d", b, got.Buckets[i], w)
		}
	}
}

// BenchmarkTotals is the cost of one sample of the dashboard's ticker (once a second), with
// 20 routes that each saw every status class.
func BenchmarkTotals(b *testing.B) {
	m := New(nil)
	for i := range 20 {
		r := m.Route("route"+string(rune('a'+i)), "up")
		for _, st := range []int{200, 301, 404, 502} {
			r.Request(st, time.Millisecond, time.Millisecond, true)
		}
	}
	m.GatewayError(reason.NoRoute)
	b.ReportAllocs()
	for b.Loop() {
		m.Totals()
	}
}
