package tracing

import (
	"encoding/hex"
	"strings"
	"testing"
)

const (
	tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	sid = "00f067aa0ba902b7"
)

// TestParseTraceparent: the W3C Trace Context §3.2 rules, one row per rule, valid and not.
func TestParseTraceparent(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		ok       bool
		sampled  bool
	}{
		{"sampled", "00-" + tid + "-" + sid + "-01", true, true},
		{"not sampled", "00-" + tid + "-" + sid + "-00", true, false},
		{"other flag bits kept", "00-" + tid + "-" + sid + "-09", true, true},
		{"future version, same length", "cc-" + tid + "-" + sid + "-01", true, true},
		{"future version, more fields", "cc-" + tid + "-" + sid + "-01-whatever", true, true},
		{"future version, no dash after flags", "cc-" + tid + "-" + sid + "-01x", false, false},
		{"version 00 longer", "00-" + tid + "-" + sid + "-01-", false, false},
		{"version ff", "ff-" + tid + "-" + sid + "-01", false, false},
		{"upper-case trace id", "00-" + strings.ToUpper(tid) + "-" + sid + "-01", false, false},
		{"upper-case version", "0A-" + tid + "-" + sid + "-01", false, false},
		{"zero trace id", "00-" + strings.Repeat("0", 32) + "-" + sid + "-01", false, false},
		{"zero parent id", "00-" + tid + "-" + strings.Repeat("0", 16) + "-01", false, false},
		{"short trace id", "00-" + tid[1:] + "-" + sid + "-01", false, false},
		{"wrong separator", "00_" + tid + "-" + sid + "-01", false, false},
		{"non-hex flags", "00-" + tid + "-" + sid + "-0g", false, false},
		{"empty", "", false, false},
		{"white space inside", "00- " + tid[1:] + "-" + sid + "-01", false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, ok := ParseTraceparent([]byte(tc.in))
			if ok != tc.ok {
				t.Fatalf("ParseTraceparent(%q) ok = %v, want %v", tc.in, ok, tc.ok)
			}
			if !ok {
				return
			}
			if hex.EncodeToString(p.TraceID[:]) != tid || hex.EncodeToString(p.SpanID[:]) != sid || p.Sampled() != tc.sampled {
				t.Errorf("ParseTraceparent(%q) = %x %x %02x", tc.in, p.TraceID, p.SpanID, p.Flags)
			}
		})
	}
}

func TestAppendTraceparent(t *testing.T) {
	p, _ := ParseTraceparent([]byte("00-" + tid + "-" + sid + "-01"))
	if got := string(AppendTraceparent(nil, p.TraceID, p.SpanID, true)); got != "00-"+tid+"-"+sid+"-01" {
		t.Errorf("got %q", got)
	}
	if got := string(AppendTraceparent([]byte("x"), p.TraceID, p.SpanID, false)); got != "x00-"+tid+"-"+sid+"-00" {
		t.Errorf("got %q", got)
	}
}

// TestValidTracestate: the list-member grammar of §3.3.1.
func TestValidTracestate(t *testing.T) {
	for _, tc := range []struct {
		in string
		ok bool
	}{
		{"congo=t61rcWkgMzE", true},
		{"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", true},
		{" rojo=1 , , congo=2 ", true},
		{"tenant@vendor=x", true},
		{"a*b/c_d-e=x y", true},
		{"", true},
		{"Upper=x", false},
		{"novalue", false},
		{"k=", false},
		{"k=spaced value ", true}, // the trailing space is white space around the member
		{"k=a=b", false},
		{"tenant@toolongsystemname1=x", false},
		{"@vendor=x", false},
		{"k=\x01", false},
		{strings.Repeat("k=v,", 32) + "z=1", false},
		{strings.TrimSuffix(strings.Repeat("k=v,", 32), ","), true},
		{"k=" + strings.Repeat("v", 257), false},
	} {
		if got := ValidTracestate([]byte(tc.in)); got != tc.ok {
			t.Errorf("ValidTracestate(%q) = %v, want %v", tc.in, got, tc.ok)
		}
	}
}

// FuzzParseTraceparent: any value either fails or parses to ids that print back to the
// value's version 00 fields, and parsing never panics or reads out of bounds.
func FuzzParseTraceparent(f *testing.F) {
	f.Add("00-" + tid + "-" + sid + "-01")
	f.Add("cc-" + tid + "-" + sid + "-01-more")
	f.Add("ff-" + tid + "-" + sid + "-01")
	f.Fuzz(func(t *testing.T, s string) {
		p, ok := ParseTraceparent([]byte(s))
		if !ok {
			return
		}
		if p.TraceID.IsZero() || p.SpanID.IsZero() {
			t.Fatalf("%q parsed with a zero id", s)
		}
		out := string(AppendTraceparent(nil, p.TraceID, p.SpanID, p.Sampled()))
		if out[3:52] != s[3:52] {
			t.Fatalf("%q printed back as %q", s, out)
		}
	})
}

func BenchmarkParseTraceparent(b *testing.B) {
	v := []byte("00-" + tid + "-" + sid + "-01")
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := ParseTraceparent(v); !ok {
			b.Fatal("invalid")
		}
	}
}

// TestParseAllocatesNothing: the request path's parsing makes no heap allocation.
func TestParseAllocatesNothing(t *testing.T) {
	tp, ts := []byte("00-"+tid+"-"+sid+"-01"), []byte("rojo=00f067aa0ba902b7, tenant@vendor=x")
	if n := testing.AllocsPerRun(100, func() {
		ParseTraceparent(tp)
		ValidTracestate(ts)
		AppendTraceparent(tp[:0:len(tp)], NewTraceID(), NewSpanID(), true)
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
