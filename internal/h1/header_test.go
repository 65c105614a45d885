package h1

import (
	"strings"
	"testing"
)

func headerOf(pairs ...string) *Header {
	var h Header
	for i := 0; i+1 < len(pairs); i += 2 {
		h.Add(pairs[i], pairs[i+1])
	}
	return &h
}

func names(h *Header) string {
	var s []string
	for _, f := range h.Fields {
		s = append(s, string(f.Name))
	}
	return strings.Join(s, ",")
}

func TestHeaderAccessors(t *testing.T) {
	h := headerOf("Accept", "a", "X-Dup", "1", "x-dup", "2", "Empty", "")
	tests := []struct {
		name   string
		key    string
		value  string
		exists bool
		count  int
	}{
		{name: "exact case", key: "Accept", value: "a", exists: true, count: 1},
		{name: "other case", key: "ACCEPT", value: "a", exists: true, count: 1},
		{name: "duplicates give first", key: "X-DUP", value: "1", exists: true, count: 2},
		{name: "empty value", key: "empty", value: "", exists: true, count: 1},
		{name: "absent", key: "Accept-Encoding", exists: false, count: 0},
		{name: "prefix is not a match", key: "Accep", exists: false, count: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			v, ok := h.Get(tc.key)
			if ok != tc.exists || string(v) != tc.value {
				t.Errorf("Get = %q, %v; want %q, %v", v, ok, tc.value, tc.exists)
			}
			if h.Has(tc.key) != tc.exists {
				t.Errorf("Has = %v", !tc.exists)
			}
			if c := h.Count(tc.key); c != tc.count {
				t.Errorf("Count = %d, want %d", c, tc.count)
			}
		})
	}
}

func TestHeaderMutation(t *testing.T) {
	tests := []struct {
		name string
		op   func(h *Header)
		want string // "Name: Value\r\n"...
	}{
		{name: "Del all duplicates keeps order", op: func(h *Header) { h.Del("x-dup") }, want: "A: 1\r\nB: 2\r\n"},
		{name: "Del absent", op: func(h *Header) { h.Del("Nope") }, want: "A: 1\r\nX-Dup: a\r\nB: 2\r\nx-dup: b\r\n"},
		{name: "Set replaces", op: func(h *Header) { h.Set("X-DUP", "c") }, want: "A: 1\r\nB: 2\r\nX-DUP: c\r\n"},
		{name: "Add appends", op: func(h *Header) { h.Add("C", "3") }, want: "A: 1\r\nX-Dup: a\r\nB: 2\r\nx-dup: b\r\nC: 3\r\n"},
		{name: "Reset then Add", op: func(h *Header) { h.Reset(); h.Add("Z", "26") }, want: "Z: 26\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := headerOf("A", "1", "X-Dup", "a", "B", "2", "x-dup", "b")
			tc.op(h)
			if got := string(h.AppendTo(nil)); got != tc.want {
				t.Errorf("AppendTo = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestHeaderAddCopies(t *testing.T) {
	var h Header
	b := []byte("value")
	h.Add("Name", string(b))
	b[0] = 'X'
	for i := range 50 { // force the arena to grow under the first field
		h.Add("K", strings.Repeat("v", i))
	}
	if v, _ := h.Get("name"); string(v) != "value" {
		t.Errorf("Get = %q after later Adds", v)
	}
}

func TestRemoveHopByHop(t *testing.T) {
	tests := []struct {
		name string
		in   []string
		want string
	}{
		{name: "fixed list",
			in:   []string{"Connection", "keep-alive", "Keep-Alive", "timeout=5", "Proxy-Connection", "x", "TE", "trailers", "Trailer", "T", "Transfer-Encoding", "chunked", "Upgrade", "h2c", "Proxy-Authenticate", "x", "Proxy-Authorization", "x", "Accept", "a"},
			want: "Trailer,Accept"}, // Trailer is not hop-by-hop (RFC 9110 §6.6.2)
		{name: "connection tokens", in: []string{"A", "1", "Connection", "x-a, X-B ,, close", "X-A", "1", "x-b", "2", "X-C", "3"}, want: "A,X-C"},
		{name: "several Connection fields", in: []string{"Connection", "x-a", "connection", "x-b", "X-A", "1", "X-B", "2", "X-C", "3"}, want: "X-C"},
		{name: "nothing to remove", in: []string{"A", "1", "B", "2"}, want: "A,B"},
		{name: "Connection before and after", in: []string{"X-Late", "1", "Connection", "X-Late, X-Early", "X-Early", "2", "Keep", "3"}, want: "Keep"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := headerOf(tc.in...)
			h.RemoveHopByHop()
			if got := names(h); got != tc.want {
				t.Errorf("fields = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestRemoveHopByHopManyConnectionFields(t *testing.T) {
	var pairs []string
	for i := range 12 {
		pairs = append(pairs, "Connection", "X-"+string(rune('a'+i)), "X-"+string(rune('a'+i)), "v")
	}
	h := headerOf(append(pairs, "Keep", "1")...)
	h.RemoveHopByHop()
	if got := names(h); got != "Keep" {
		t.Errorf("fields = %q, want Keep", got)
	}
}

func TestHeaderValidate(t *testing.T) {
	tests := []struct {
		name  string
		key   string
		value string
		ok    bool
	}{
		{name: "ok", key: "X-A", value: "a b", ok: true},
		{name: "empty value", key: "X-A", value: "", ok: true},
		{name: "CRLF in value", key: "X-A", value: "a\r\nB: c"},
		{name: "NUL in value", key: "X-A", value: "a\x00"},
		{name: "leading space", key: "X-A", value: " a"},
		{name: "space in name", key: "X A", value: "a"},
		{name: "empty name", key: "", value: "a"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := headerOf(tc.key, tc.value).Validate()
			if (err == nil) != tc.ok {
				t.Errorf("Validate = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestHeaderZeroAllocs(t *testing.T) {
	h := headerOf("Host", "h", "Connection", "x-a", "X-A", "1", "Accept", "a")
	allocs := testing.AllocsPerRun(100, func() {
		h.Reset()
		h.Add("Host", "h")
		h.Add("Connection", "x-a")
		h.Add("X-A", "1")
		_, _ = h.Get("accept")
		h.RemoveHopByHop()
		h.Set("Via", "1.1 sluice")
	})
	if allocs != 0 {
		t.Errorf("allocs = %v, want 0", allocs)
	}
}

// TestValidValueMatchesTable checks the word-at-a-time validValue against the byte table
// for every byte value at every position of a word.
func TestValidValueMatchesTable(t *testing.T) {
	base := []byte("abcdefghijklmnopqrstuvw") // 23 bytes: two words and a tail
	for pos := range len(base) {
		for c := range 256 {
			b := append([]byte(nil), base...)
			b[pos] = byte(c)
			if got, want := validValue(b), isValueChar[c]; got != want {
				t.Fatalf("byte %#x at %d: validValue = %v, want %v", c, pos, got, want)
			}
		}
	}
}

func TestForbiddenTrailer(t *testing.T) {
	for _, name := range []string{"Content-Length", "content-length", "TRANSFER-ENCODING", "Host", "Connection",
		"Set-Cookie", "Cookie", "Authorization", "Trailer", "TE", "Content-Type", "Location", "Forwarded"} {
		if !ForbiddenTrailer([]byte(name)) {
			t.Errorf("%s may be sent in trailers; RFC 9110 §6.5.1 says it may not", name)
		}
	}
	for _, name := range []string{"X-Checksum", "Server-Timing", "Digest", "ETag", "Authentication-Info", "X-Content-Length"} {
		if ForbiddenTrailer([]byte(name)) {
			t.Errorf("%s is refused in trailers; it may be sent there", name)
		}
	}
}

func TestRemoveFunc(t *testing.T) {
	h := headerOf("A", "1", "B", "2", "a", "3", "C", "4")
	if n := h.RemoveFunc(func(f *Field) bool { return EqualFold(f.Name, "a") }); n != 2 || names(h) != "B,C" {
		t.Errorf("RemoveFunc removed %d, left %q; want 2 and B,C", n, names(h))
	}
}

// TestHeaderGrow: after Grow(n, b), n Adds of b bytes in all reallocate neither the fields
// nor the bytes, and the fields added before Grow keep their bytes.
func TestHeaderGrow(t *testing.T) {
	var h Header
	h.Add("Before", "kept")
	h.Grow(3, len("A1B22C333"))
	fields, arena := &h.Fields[:cap(h.Fields)][0], &h.arena[:1][0]
	h.Add("A", "1")
	h.Add("B", "22")
	h.Add("C", "333")
	if &h.Fields[0] != fields || &h.arena[0] != arena {
		t.Error("the Adds after Grow reallocated")
	}
	var got []string
	for _, f := range h.Fields {
		got = append(got, string(f.Name)+"="+string(f.Value))
	}
	if want := "Before=kept A=1 B=22 C=333"; strings.Join(got, " ") != want {
		t.Errorf("fields %q, want %q", strings.Join(got, " "), want)
	}
}
