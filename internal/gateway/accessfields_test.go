package gateway

import (
	"strconv"
	"testing"
)

// appendToken must give strconv.AppendQuote's bytes for every string, on its fast path and off.
func TestAppendTokenMatchesAppendQuote(t *testing.T) {
	for _, s := range []string{"", "ok", "127.0.0.1:8080", "[::1]:443", "connect_refused", `a"b`, `a\b`,
		"a\x00", "\x1f", "\x7f", " ~", "é", "\xff", "tab\there", "x\u2028y"} {
		if got, want := string(appendToken([]byte("x"), s)), string(strconv.AppendQuote([]byte("x"), s)); got != want {
			t.Errorf("%q: got %s want %s", s, got, want)
		}
	}
}
