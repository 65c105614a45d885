package subfilter

import (
	"strings"
	"testing"

	"sluice/internal/plugin"
)

func newFilter(rules ...string) *SubFilter {
	p := &SubFilter{}
	for i := 0; i < len(rules); i += 2 {
		p.from = append(p.from, []byte(rules[i]))
		p.to = append(p.to, []byte(rules[i+1]))
		p.first[rules[i][0]] = true
	}
	return p
}

// TestBodyEverySplit feeds each body in two pieces, split at every position, then in pieces
// of one byte: the output is always the same as the whole body's.
func TestBodyEverySplit(t *testing.T) {
	p := newFilter("abcab", "X", "abd", "Y", "b", "")
	cases := map[string]string{
		"abcabd":      "XY"[:1] + "d",
		"xxabcabcabd": "xxXcY",
		"abdabcab":    "YX",
		"abca":        "aca",
		"ab":          "a",
		"zzz":         "zzz",
	}
	run := func(pieces []string) string {
		var r plugin.Request
		r.Slot(p.slot).V = &state{}
		var out []byte
		for i, pc := range pieces {
			out = p.Body(&r, out, []byte(pc), i == len(pieces)-1)
		}
		return string(out)
	}
	for in, want := range cases {
		if got := run([]string{in}); got != want {
			t.Errorf("%q whole: %q, want %q", in, got, want)
		}
		for i := 0; i <= len(in); i++ {
			if got := run([]string{in[:i], in[i:]}); got != want {
				t.Errorf("%q split at %d: %q, want %q", in, i, got, want)
			}
		}
		if got := run(append(strings.Split(in, ""), "")); got != want {
			t.Errorf("%q byte by byte: %q, want %q", in, got, want)
		}
	}
}
