package compress

import (
	"testing"

	"sluice/internal/plugin"
)

// TestNegotiate is the q-value table: refusals, *, identity, ties broken by the server's
// order, malformed weights, several fields.
func TestNegotiate(t *testing.T) {
	all := []Coding{Zstd, Brotli, Gzip}
	gzipFirst := []Coding{Gzip, Brotli, Zstd}
	cases := []struct {
		name   string
		fields []string // Accept-Encoding values, one field each; nil: no field
		prefer []Coding
		want   Coding
	}{
		{name: "no header", fields: nil, prefer: all, want: None},
		{name: "empty header", fields: []string{""}, prefer: all, want: None},
		{name: "gzip only", fields: []string{"gzip"}, prefer: all, want: Gzip},
		{name: "x-gzip is gzip", fields: []string{"x-gzip"}, prefer: all, want: Gzip},
		{name: "case-insensitive", fields: []string{"GZip, BR"}, prefer: all, want: Brotli},
		{name: "browser set, server order", fields: []string{"gzip, deflate, br, zstd"}, prefer: all, want: Zstd},
		{name: "browser set, gzip preferred", fields: []string{"gzip, deflate, br, zstd"}, prefer: gzipFirst, want: Gzip},
		{name: "client weights beat server order", fields: []string{"zstd;q=0.5, gzip;q=0.9"}, prefer: all, want: Gzip},
		{name: "q=0 refuses", fields: []string{"zstd;q=0, br;q=0, gzip"}, prefer: all, want: Gzip},
		{name: "q=0.000 refuses", fields: []string{"gzip;q=0.000"}, prefer: all, want: None},
		{name: "all refused", fields: []string{"gzip;q=0, br;q=0, zstd;q=0"}, prefer: all, want: None},
		{name: "unknown codings only", fields: []string{"deflate, compress"}, prefer: all, want: None},
		{name: "star", fields: []string{"*"}, prefer: all, want: Zstd},
		{name: "star with a refusal", fields: []string{"*, zstd;q=0"}, prefer: all, want: Brotli},
		{name: "star refused", fields: []string{"*;q=0"}, prefer: all, want: None},
		{name: "star low, explicit higher", fields: []string{"*;q=0.1, gzip;q=0.5"}, prefer: all, want: Gzip},
		{name: "identity higher wins", fields: []string{"gzip;q=0.5, identity"}, prefer: all, want: None},
		{name: "identity equal loses", fields: []string{"gzip, identity"}, prefer: all, want: Gzip},
		{name: "identity refused", fields: []string{"identity;q=0, gzip;q=0.2"}, prefer: all, want: Gzip},
		{name: "identity alone", fields: []string{"identity"}, prefer: all, want: None},
		{name: "not offered", fields: []string{"br"}, prefer: []Coding{Gzip}, want: None},
		{name: "spaces and params", fields: []string{" br ; foo=bar ; q=0.7 ,\tgzip;Q=0.6 "}, prefer: all, want: Brotli},
		{name: "three decimals", fields: []string{"br;q=0.701, gzip;q=0.702"}, prefer: all, want: Gzip},
		{name: "q=1.000", fields: []string{"gzip;q=1.000, br;q=0.999"}, prefer: all, want: Gzip},
		{name: "malformed q refuses", fields: []string{"br;q=high, gzip;q=0.1"}, prefer: all, want: Gzip},
		{name: "q above 1 refuses", fields: []string{"br;q=1.5, gzip;q=0.1"}, prefer: all, want: Gzip},
		{name: "four decimals refuses", fields: []string{"br;q=0.5555, gzip;q=0.1"}, prefer: all, want: Gzip},
		{name: "empty elements", fields: []string{",, gzip ,,"}, prefer: all, want: Gzip},
		{name: "two fields", fields: []string{"gzip;q=0.5", "br"}, prefer: all, want: Brotli},
		{name: "repeated coding keeps the highest", fields: []string{"br;q=0.1, br;q=0.9, gzip;q=0.5"}, prefer: all, want: Brotli},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h plugin.Header
			h.Add("Host", "x")
			for _, v := range tc.fields {
				h.Add("Accept-Encoding", v)
			}
			if got := negotiate(&h, tc.prefer); got != tc.want {
				t.Errorf("negotiate(%q) = %v, want %v", tc.fields, got, tc.want)
			}
		})
	}
}

// TestNegotiateAllocatesNothing: negotiation runs on every request of the route.
func TestNegotiateAllocatesNothing(t *testing.T) {
	var h plugin.Header
	h.Add("Accept-Encoding", "gzip, deflate, br;q=0.9, zstd;q=0.8, *;q=0")
	prefer := []Coding{Zstd, Brotli, Gzip}
	if n := testing.AllocsPerRun(100, func() { negotiate(&h, prefer) }); n != 0 {
		t.Errorf("%v allocations per negotiation, want 0", n)
	}
}

// TestMediaTypes: the patterns of types, and what streaming means.
func TestMediaTypes(t *testing.T) {
	cases := []struct {
		pattern, ct string
		ok, want    bool
	}{
		{"text/html", "text/html; charset=utf-8", true, true},
		{"text/html", "TEXT/HTML", true, true},
		{"text/html", "text/plain", true, false},
		{"text/*", "text/css", true, true},
		{"text/*", "textile/x", true, false},
		{"application/*+json", "application/problem+json", true, true},
		{"application/*+json", "application/json", true, false},
		{"application/*+json", "application/+json", true, false},
		{"*", "image/png", true, true},
		{"application/json", "", true, false},
		{"json", "", false, false},
		{"/json", "", false, false},
		{"text/", "", false, false},
		{"*/json", "", false, false},
		{"text/*+", "", false, false},
		{"text/html;q=1", "", false, false},
		{"text/h tml", "", false, false},
	}
	for _, tc := range cases {
		m, ok := parseMediaType(tc.pattern)
		if ok != tc.ok {
			t.Errorf("parseMediaType(%q) ok = %v, want %v", tc.pattern, ok, tc.ok)
			continue
		}
		if !ok {
			continue
		}
		typ, sub := splitType([]byte(tc.ct))
		if got := len(sub) > 0 && m.match(typ, sub); got != tc.want {
			t.Errorf("%q matches %q = %v, want %v", tc.pattern, tc.ct, got, tc.want)
		}
	}
	for ct, want := range map[string]bool{
		"text/event-stream": true, "Text/Event-Stream; charset=utf-8": true, "application/grpc": true,
		"application/grpc+proto": true, "multipart/x-mixed-replace; boundary=x": true,
		"text/plain": false, "application/json": false, "application/gr": false,
	} {
		if got := streaming(splitType([]byte(ct))); got != want {
			t.Errorf("streaming(%q) = %v, want %v", ct, got, want)
		}
	}
}
