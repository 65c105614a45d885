package accesslog

import (
	"io"
	"strings"
	"testing"
	"unsafe"
)

// unsafeView is b as a string that changes when b does.
func unsafeView(b []byte) string { return unsafe.String(unsafe.SliceData(b), len(b)) }

// renderRun adds a run of two string fields to ln through its memo, as the gateway does.
func renderRun(ln *Line, key uint64, a, b string) {
	if ln.Recall(0, key, a, b, "") {
		return
	}
	at := ln.Mark()
	ln.Str("a", a).Str("b", b)
	ln.Remember(0, at, key, a, b, "")
}

// TestLineRecallMatchesExactly: a run is copied from the memo only for the key and the
// values it was rendered from, byte for byte; values of the same lengths, another key, or
// the caller's buffer rewritten in place after Remember all render afresh.
func TestLineRecallMatchesExactly(t *testing.T) {
	ln := &Line{} // one Line throughout (the pool may hand out another)
	buf := []byte("host-1agent-1")
	steps := []struct {
		name, a, b, want string
		key              uint64
		rewrite          string // written over buf before the step
	}{
		{name: "first", a: "host-1", b: "agent-1", key: 1, want: `,"a":"host-1","b":"agent-1"`},
		{name: "again", a: "host-1", b: "agent-1", key: 1, want: `,"a":"host-1","b":"agent-1"`},
		{name: "same lengths", a: "host-2", b: "agent-1", key: 1, want: `,"a":"host-2","b":"agent-1"`},
		{name: "second value", a: "host-2", b: "agent-9", key: 1, want: `,"a":"host-2","b":"agent-9"`},
		{name: "values move between fields", a: "host-2a", b: "gent-9", key: 1, want: `,"a":"host-2a","b":"gent-9"`},
		{name: "another key", a: "host-2a", b: "gent-9", key: 2, want: `,"a":"host-2a","b":"gent-9"`},
		{name: "buffer", key: 1, want: `,"a":"host-1","b":"agent-1"`},
		{name: "buffer rewritten", key: 1, rewrite: "host-3agent-3", want: `,"a":"host-3","b":"agent-3"`},
		{name: "escaped", a: "h\"1", b: "\x01", key: 1, want: `,"a":"h\"1","b":"\u0001"`},
	}
	for _, s := range steps {
		if s.rewrite != "" {
			copy(buf, s.rewrite)
		}
		a, b := s.a, s.b
		if strings.HasPrefix(s.name, "buffer") { // the values are views of buf, as a request's host is of the read buffer
			a, b = unsafeView(buf[:6]), unsafeView(buf[6:])
		}
		ln.b = ln.b[:0]
		renderRun(ln, s.key, a, b)
		if got := string(ln.b); got != s.want {
			t.Errorf("%s: %s, want %s", s.name, got, s.want)
		}
	}
}

// TestLineRecallKeepsNoLongRun: a run longer than a memo keeps is rendered every time.
func TestLineRecallKeepsNoLongRun(t *testing.T) {
	ln := &Line{}
	long := strings.Repeat("x", maxMemo)
	renderRun(ln, 1, long, "")
	if ln.Recall(0, 1, long, "", "") {
		t.Fatal("a run over maxMemo was remembered")
	}
}

// TestLineBytesAllocatesNothing: a value longer than Go's 32-byte stack buffer for
// string conversions (a browser's user agent, a query string) is not copied to the heap.
func TestLineBytesAllocatesNothing(t *testing.T) {
	l := New(io.Discard)
	defer l.Close()
	v := []byte("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0")
	if n := testing.AllocsPerRun(1000, func() { l.Write(l.Begin().Bytes("user_agent", v)) }); n != 0 {
		t.Fatalf("%.2f allocations per line, want 0", n)
	}
}
