package server

import (
	"net/http"
	"testing"
	"time"
)

// TestHTTPDate: the shared Date value is the IMF-fixdate of the second asked for, changes
// with the second, and costs no allocation within a second.
func TestHTTPDate(t *testing.T) {
	at := time.Date(1994, 11, 6, 8, 49, 37, 500, time.FixedZone("x", 3600))
	if got := string(httpDate(at)); got != "Sun, 06 Nov 1994 07:49:37 GMT" {
		t.Fatalf("httpDate = %q", got)
	}
	if got := string(httpDate(at.Add(time.Second))); got != "Sun, 06 Nov 1994 07:49:38 GMT" {
		t.Fatalf("the next second: %q", got)
	}
	now := time.Now()
	if got, want := string(httpDate(now)), now.UTC().Format(http.TimeFormat); got != want {
		t.Fatalf("httpDate(now) = %q, want %q", got, want)
	}
	if n := testing.AllocsPerRun(1000, func() { httpDate(now) }); n != 0 {
		t.Fatalf("%.1f allocations per call within one second, want 0", n)
	}
}

func BenchmarkHTTPDate(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		httpDate(time.Now())
	}
}
