package faultinjection

import (
	"math"
	"sync"
	"testing"
)

// TestShareHonoursPercentage: in every window of 10,000 requests of 20 seeds, the share
// taken is within 2 points of the percentage (and 0 and 100 are exact). Seeds are fixed,
// so the test is deterministic: it cannot flake, and it fails if the mixing is broken.
func TestShareHonoursPercentage(t *testing.T) {
	for _, pct := range []float64{0, 0.5, 1, 10, 33.3, 50, 90, 99.5, 100} {
		worst := 0.0
		for seed := uint64(1); seed <= 20; seed++ {
			var s share
			s.set(&pct, mix(seed))
			for w := range 3 {
				n := 0
				for range 10000 {
					if s.take() {
						n++
					}
				}
				got := float64(n) / 100
				if pct == 0 || pct == 100 {
					if got != pct {
						t.Fatalf("pct %v seed %d window %d: took %v%%, want exactly %v", pct, seed, w, got, pct)
					}
				}
				worst = math.Max(worst, math.Abs(got-pct))
			}
		}
		if worst > 2 {
			t.Errorf("pct %v: a window of 10,000 was %.2f points off, want at most 2", pct, worst)
		}
	}
}

// TestShareNotPeriodic: whether a request is taken says nothing of whether the next one is
// (a retry right after an abort is not always spared): at 50%, both of two consecutive
// requests are taken about a quarter of the time.
func TestShareNotPeriodic(t *testing.T) {
	pct := 50.0
	var s share
	s.set(&pct, 7)
	both, prev := 0, false
	const n = 100000
	for range n {
		cur := s.take()
		if cur && prev {
			both++
		}
		prev = cur
	}
	if f := float64(both) / n; f < 0.24 || f > 0.26 {
		t.Errorf("consecutive pairs both taken %.3f of the time, want 0.25", f)
	}
}

// TestShareExactUnderConcurrency: under one seed, the number taken among N requests is the
// same whether they come one by one or from 8 goroutines at once.
func TestShareExactUnderConcurrency(t *testing.T) {
	pct := 12.5
	var seq, par share
	seq.set(&pct, 42)
	par.set(&pct, 42)
	const n = 80000
	want := 0
	for range n {
		if seq.take() {
			want++
		}
	}
	var mu sync.Mutex
	got := 0
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			k := 0
			for range n / 8 {
				if par.take() {
					k++
				}
			}
			mu.Lock()
			got += k
			mu.Unlock()
		})
	}
	wg.Wait()
	if got != want {
		t.Errorf("concurrent: %d taken, sequential: %d", got, want)
	}
}
