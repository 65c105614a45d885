package accesslog

import (
	"math"
	"math/rand"
	"strconv"
	"sync"
	"testing"
	"time"
)

// oldTime and oldMs are the formatting Time and Ms replaced (4cb7302): the output must not change.
func oldTime(t time.Time) string {
	return `"` + string(t.UTC().AppendFormat(nil, "2006-01-02T15:04:05.000Z07:00")) + `"`
}

func oldMs(d time.Duration) string {
	return strconv.FormatFloat(float64(d.Microseconds())/1000, 'f', -1, 64)
}

func fieldOf(ln *Line) string { s := string(ln.b); return s[len(`{"k":`):] }

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
