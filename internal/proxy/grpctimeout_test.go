package proxy

import (
	"math"
	"testing"
	"time"

	"sluice/internal/h1"
)

// TestGRPCTimeout: grpc-timeout is 1 to 8 digits and a unit (gRPC over HTTP/2, "Requests");
// anything else is no timeout (the field is forwarded as it came, for the backend to judge).
// A value past what a Duration holds is the longest Duration, as grpc-go reads it, not a
// wrapped negative one that ended the call at once.
func TestGRPCTimeout(t *testing.T) {
	cases := []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{v: "1H", want: time.Hour, ok: true},
		{v: "2M", want: 2 * time.Minute, ok: true},
		{v: "3S", want: 3 * time.Second, ok: true},
		{v: "100m", want: 100 * time.Millisecond, ok: true},
		{v: "7u", want: 7 * time.Microsecond, ok: true},
		{v: "99999999n", want: 99999999, ok: true},
		{v: "0S", want: 0, ok: true},
		{v: "00000005S", want: 5 * time.Second, ok: true},
		{v: "2562047H", want: 2562047 * time.Hour, ok: true},
		{v: "2562048H", want: math.MaxInt64, ok: true}, // wrapped negative before
		{v: "99999999H", want: math.MaxInt64, ok: true},
		{v: "99999999M", want: 99999999 * time.Minute, ok: true},
		{v: "123456789S"}, // 9 digits
		{v: "S"},
		{v: "5"},
		{v: "5s"},
		{v: "5x"},
		{v: "+5S"},
		{v: "-5S"},
		{v: "5 S"},
		{v: "0x5S"},
		{v: "1.5S"},
	}
	for _, tc := range cases {
		var h h1.Header
		h.Add("Grpc-Timeout", tc.v)
		if got, ok := grpcTimeout(&h); got != tc.want || ok != tc.ok {
			t.Errorf("grpc-timeout %q: %v %v; want %v %v", tc.v, got, ok, tc.want, tc.ok)
		}
	}
	if _, ok := grpcTimeout(&h1.Header{}); ok {
		t.Error("no grpc-timeout field: a timeout")
	}
}
