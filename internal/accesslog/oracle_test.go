package accesslog

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// oldTime and oldMs are the formatting Time and Ms replaced (4cb7302): the output must not change.
func oldTime(t time.Time) string {
	return `"` + string(t.UTC().AppendFormat(nil, "2006-01-02T15:04:05.000Z07:00")) + `"`
}

func oldMs(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', -1, 64)
}

func fieldOf(ln *Line) string { s := string(ln.b); return s[len(`{,"k":`):] }

func TestTimeMatchesAppendFormatConcurrently(t *testing.T) {
	times := []time.Time{
		{}, time.Unix(-1, 5e8), time.Unix(-1, 999999999), time.Unix(0, 0), time.Unix(-62135596800, 1),
		time.Date(-5, 3, 1, 0, 0, 0, 123456789, time.UTC), time.Date(12345, 1, 1, 23, 59, 59, 999999999, time.UTC),
		time.Unix(1<<40, 7e6), time.Unix(math.MaxInt64/4, 0),
		time.Date(1969, 12, 31, 23, 59, 59, 1e6, time.FixedZone("x", -3600*5-1800)),
	}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(g)))
			for i := 0; i < 20000; i++ {
				var tm time.Time
				if i%3 == 0 {
					tm = times[r.Intn(len(times))]
				} else {
					tm = time.Unix(r.Int63n(1<<36)-(1<<35), r.Int63n(1e9))
				}
				ln := &Line{b: []byte{'{'}}
				ln.Time("k", tm)
				if got, want := fieldOf(ln), oldTime(tm); got != want {
					t.Errorf("%v: got %s want %s", tm, got, want)
					return
				}
			}
		}(g)
	}
	wg.Wait()
}

func TestMsMatchesFloatFormatting(t *testing.T) {
	ds := []time.Duration{0, 1, 999, 1000, 1001, -1, -999, -1000, -1500, -2913000, 2913000, 2910000, 3e6,
		math.MaxInt64, math.MinInt64, 1 << 53 * 1000, 1e15 * 1000}
	r := rand.New(rand.NewSource(1))
	for i := 0; i < 200000; i++ {
		ds = append(ds, time.Duration(r.Int63n(int64(1e6*time.Second))))
	}
	for _, d := range ds {
		ln := &Line{b: []byte{'{'}}
		ln.Ms("k", d)
		if got, want := fieldOf(ln), oldMs(d); got != want {
			t.Errorf("%d: got %s want %s", d, got, want)
		}
	}
}

// oldAppendJSONString is the byte-at-a-time escaping appendJSONString replaced: the output
// must not change.
func oldAppendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c < 0x20 || c == 0x7f:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, `\ufffd`...)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// jsonStringCases are strings at the edges of appendJSONString's runs: escapes and invalid
// bytes first, last, alone and next to each other, valid and truncated multi-byte runes.
var jsonStringCases = []string{
	"", "a", "/api/v3/items", `"`, `\`, "\x00", "\x1f", "\x7f", "\x80", "\xff", "é", "€", "😀", "\uFFFD",
	"\xef\xbf\xbd", "\xe2\x82", "a\xe2\x82", "\xe2\x82a", `a"b\c` + "\n\x01\xff", `""\\`, "\xff\xfe", "ab€\x7fcd",
	"\xf0\x9f\x98", "x\xf0\x9f\x98\x80y", "\xed\xa0\x80", "\xc0\xaf", strings.Repeat("ab\"", 50),
}

func TestAppendJSONStringMatchesByteAtATime(t *testing.T) {
	check := func(s string) {
		if got, want := appendJSONString([]byte("x"), s), oldAppendJSONString([]byte("x"), s); !bytes.Equal(got, want) {
			t.Errorf("%q: got %s want %s", s, got, want)
		}
	}
	for _, s := range jsonStringCases {
		check(s)
	}
	r := rand.New(rand.NewSource(1))
	alphabet := []byte("az/.-_\"\\\x00\x1f\x7f\x80\xbf\xc3\xa9\xe2\x82\xac\xf0\x9f\xff ")
	buf := make([]byte, 0, 64)
	for i := 0; i < 200000; i++ {
		buf = buf[:0]
		for n := r.Intn(24); n > 0; n-- {
			buf = append(buf, alphabet[r.Intn(len(alphabet))])
		}
		check(string(buf))
	}
}

func FuzzAppendJSONString(f *testing.F) {
	for _, s := range jsonStringCases {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := appendJSONString(nil, s)
		if want := oldAppendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s want %s", s, got, want)
		}
		if !json.Valid(got) {
			t.Fatalf("%q: not JSON: %s", s, got)
		}
	})
}

// oldLine is the line builder the comma-first one replaced (every field but the first
// preceded by a comma, the '{' written by Begin): the lines must not change.
type oldLine struct{ b []byte }

func (o *oldLine) key(k string) {
	if len(o.b) > 1 {
		o.b = append(o.b, ',')
	}
	o.b = append(o.b, '"')
	o.b = append(o.b, k...)
	o.b = append(o.b, '"', ':')
}

// rawJSON appends itself as JSON (a JSONAppender for the test).
type rawJSON []byte

func (r rawJSON) AppendJSON(b []byte) []byte { return append(b, r...) }

// TestLineMatchesOldBuilder: random sequences of fields of every kind, none at all
// included, give the same bytes from Begin...Write as from the old builder.
func TestLineMatchesOldBuilder(t *testing.T) {
	var out bytes.Buffer
	l := newLogger(&out, time.Hour)
	defer l.Close()
	r := rand.New(rand.NewSource(2))
	at := time.Date(2026, 12, 6, 20, 1, 2, 345e6, time.UTC)
	for i := 0; i < 20000; i++ {
		ln, old := l.Begin(), &oldLine{b: []byte{'{'}}
		for n := r.Intn(8); n > 0; n-- {
			k := jsonStringCases[r.Intn(6)+1] // plain and odd keys alike: keys are copied as given
			v := jsonStringCases[r.Intn(len(jsonStringCases))]
			switch r.Intn(8) {
			case 0:
				ln.Str(k, v)
				old.key(k)
				old.b = oldAppendJSONString(old.b, v)
			case 1:
				ln.Bytes(k, []byte(v))
				old.key(k)
				old.b = oldAppendJSONString(old.b, v)
			case 2:
				x := r.Int63() - r.Int63()
				ln.Int(k, x)
				old.key(k)
				old.b = strconv.AppendInt(old.b, x, 10)
			case 3:
				ln.Bool(k, i%2 == 0)
				old.key(k)
				old.b = strconv.AppendBool(old.b, i%2 == 0)
			case 4:
				d := time.Duration(r.Int63n(int64(time.Hour)))
				ln.Ms(k, d)
				old.key(k)
				old.b = append(old.b, oldMs(d)...)
			case 5:
				ln.Time(k, at)
				old.key(k)
				old.b = append(old.b, oldTime(at)...)
			case 6:
				ln.Raw(k, []byte(`[1,{"a":"b"}]`))
				old.key(k)
				old.b = append(old.b, `[1,{"a":"b"}]`...)
			case 7:
				ln.JSON(k, rawJSON(`{"target":"x","conn":1}`))
				old.key(k)
				old.b = append(old.b, `{"target":"x","conn":1}`...)
			}
		}
		old.b = append(old.b, '}', '\n')
		out.Reset()
		l.Write(ln)
		l.Flush()
		if got := out.String(); got != string(old.b) {
			t.Fatalf("line %d: got %s want %s", i, got, old.b)
		}
	}
}
