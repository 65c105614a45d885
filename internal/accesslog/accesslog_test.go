package accesslog

import (
	"bytes"
	"encoding/json"
	"io"
	"strings"
	"testing"
	"time"
)

type buf struct{ bytes.Buffer }

func (b *buf) Close() error { return nil }

func TestLineIsJSONWithExactFields(t *testing.T) {
	var out buf
	l := New(&out)
	at := time.Date(2026, 11, 25, 14, 6, 31, 220_987_000, time.FixedZone("x", 3600))
	l.Write(l.Begin().Time("time", at).Str("path", "/a\"b\\c\n\x01\xff").Bytes("id", []byte("r-1")).
		Int("status", 200).Bool("reused", true).Raw("tries", []byte(`[{"a":1}]`)).
		Ms("d1", 2913*time.Microsecond).Ms("d2", 2910*time.Microsecond).Ms("d3", 3*time.Millisecond).
		Ms("d4", 571*time.Microsecond).Ms("d5", 0).Ms("d6", 1500*time.Nanosecond).Ms("d7", 61*time.Second+5*time.Microsecond))
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	line := strings.TrimSuffix(out.String(), "\n")
	var m map[string]any
	if err := json.Unmarshal([]byte(line), &m); err != nil {
		t.Fatalf("not JSON: %v: %s", err, line)
	}
	for k, want := range map[string]string{
		"time": `"2026-11-25T13:06:31.220Z"`, // UTC, milliseconds, truncated
		"path": `"/a\"b\\c\u000a\u0001\ufffd"`,
		"id":   `"r-1"`, "status": `200`, "reused": `true`, "tries": `[{"a":1}]`,
		"d1": `2.913`, "d2": `2.91`, "d3": `3`, "d4": `0.571`, "d5": `0`, "d6": `0.001`, "d7": `61000.005`,
	} {
		if !strings.Contains(line, `"`+k+`":`+want) {
			t.Errorf("field %s: want %s in %s", k, want, line)
		}
	}
}

func TestTimeFormatAcrossSecondsAndZones(t *testing.T) {
	var ln Line
	base := time.Date(2026, 12, 31, 23, 59, 59, 999_999_999, time.UTC)
	for _, c := range []struct {
		t    time.Time
		want string
	}{
		{base, `"2026-12-31T23:59:59.999Z"`},
		{base.Add(time.Nanosecond), `"2027-01-01T00:00:00.000Z"`},
		{base.Add(time.Nanosecond).In(time.FixedZone("y", -5*3600)), `"2027-01-01T00:00:00.000Z"`},
		{base.Add(1_234_000_000), `"2027-01-01T00:00:01.233Z"`},
		{base.Add(1_234_000_000), `"2027-01-01T00:00:01.233Z"`}, // the cached second again
		{base, `"2026-12-31T23:59:59.999Z"`},                    // and back
	} {
		ln.b = ln.b[:0]
		ln.Time("t", c.t)
		if got := strings.TrimPrefix(string(ln.b), `,"t":`); got != c.want {
			t.Errorf("Time(%v) = %s, want %s", c.t, got, c.want)
		}
	}
}

func BenchmarkLine(b *testing.B) {
	l := New(io.Discard)
	defer l.Close()
	start := time.Now()
	b.ReportAllocs()
	for b.Loop() {
		l.Write(l.Begin().Time("time", start).Bytes("request_id", []byte("63df717fe31f-1")).
			Str("client_ip", "127.0.0.1").Str("method", "GET").Str("host", "svc3.example.com").
			Str("path", "/api/v3/items").Int("status", 200).Int("bytes_in", 0).Int("bytes_out", 300).
			Str("route", "r3").Str("upstream", "backend").Str("target", "127.0.0.1:31001").
			Ms("duration_ms", 571*time.Microsecond).Ms("upstream_ms", 535*time.Microsecond))
	}
}
