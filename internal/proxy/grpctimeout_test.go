package proxy

import (
	"math"
	"slices"
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

// TestFormatGRPCTimeout: what is left of a call goes upstream as at most 8 digits in the
// finest unit that holds it, rounded down (the backend is never given more time than the
// client waits), and grpcTimeout reads it back within one unit.
func TestFormatGRPCTimeout(t *testing.T) {
	cases := []struct {
		d    time.Duration
		want string
	}{
		{d: -time.Second, want: "1n"}, // callers send none that small; never "0n" or negative
		{d: 0, want: "1n"},
		{d: 1, want: "1n"},
		{d: 99999999, want: "99999999n"},
		{d: 100 * time.Millisecond, want: "100000u"},
		{d: 1500*time.Millisecond + 999, want: "1500000u"}, // rounded down
		{d: 99999999 * time.Microsecond, want: "99999999u"},
		{d: 100 * time.Second, want: "100000m"},
		{d: 99999999*time.Millisecond + 999999, want: "99999999m"},
		{d: 100000 * time.Second, want: "100000S"},
		{d: 99999999 * time.Minute, want: "99999999M"},
		{d: 100000000 * time.Minute, want: "1666666H"},
		{d: math.MaxInt64, want: "2562047H"},
	}
	for _, tc := range cases {
		got := formatGRPCTimeout(tc.d)
		if got != tc.want {
			t.Errorf("formatGRPCTimeout(%v) = %q; want %q", tc.d, got, tc.want)
			continue
		}
		var h, u h1.Header
		h.Add("Grpc-Timeout", got)
		u.Add("Grpc-Timeout", "1"+got[len(got)-1:])
		back, ok := grpcTimeout(&h)
		unit, _ := grpcTimeout(&u)
		if tc.d > 0 && (!ok || back > tc.d || tc.d-back >= unit) {
			t.Errorf("%q reads back as %v %v; want at most %v and within a unit of it", got, back, ok, tc.d)
		}
	}
}

// TestSetGRPCTimeout: the upstream request's grpc-timeout is replaced by what is left (one
// field, however many the client sent); one the route set or added goes alone as it is; a
// request without one is given none.
func TestSetGRPCTimeout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields []string // the upstream request's grpc-timeout values, the client's first
		n      int      // how many the client sent
		want   []string // nil: no field
	}{
		{name: "client's", fields: []string{"5S"}, n: 1, want: []string{"1234000u"}},
		{name: "client's twice", fields: []string{"5S", "7S"}, n: 2, want: []string{"1234000u"}},
		{name: "route set", fields: []string{"7S"}, n: 1, want: []string{"7S"}},
		{name: "route added", fields: []string{"5S", "7S"}, n: 1, want: []string{"7S"}},
		{name: "route added, client's twice", fields: []string{"5S", "6S", "7S"}, n: 2, want: []string{"7S"}},
		{name: "route added the client's value", fields: []string{"5S", "5S"}, n: 1, want: []string{"5S"}},
		{name: "none", n: 0},
		{name: "removed", n: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string][]string{"Content-Type": {"application/grpc"}}
			if tc.fields != nil {
				h["Grpc-Timeout"] = slices.Clone(tc.fields)
			}
			setGRPCTimeout(h, []byte("5S"), tc.n, 1234*time.Millisecond)
			if got, ok := h["Grpc-Timeout"]; !slices.Equal(got, tc.want) || ok != (tc.want != nil) {
				t.Errorf("grpc-timeout %q (present %v); want %q", got, ok, tc.want)
			}
		})
	}
}
