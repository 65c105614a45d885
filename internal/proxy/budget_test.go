package proxy

import (
	"sync"
	"testing"
	"time"
)

// TestRetryBudget: a retry budget allows budgetPercent of the requests counted in its 10 s
// window (all at one clock: the test runs in the same second wherever it starts). Requests count themselves with an atomic add from many goroutines at once (they
// run under -race here); the window moves on by whole seconds and forgets what left it; a
// request whose clock was read before the latest second counts in its own second and does
// not move the window back.
func TestRetryBudget(t *testing.T) {
	pol := &retryPolicy{budgetPercent: 20}
	now := time.Now()
	type batch struct {
		ago time.Duration // the requests' clock, before now
		n   int
	}
	tests := []struct {
		name    string
		batches []batch
		retries int
	}{
		{name: "a fifth of the requests", batches: []batch{{0, 50}}, retries: 10},
		{name: "the window's earlier seconds count", batches: []batch{{5 * time.Second, 50}, {0, 10}}, retries: 12},
		{name: "seconds that left the window do not", batches: []batch{{19 * time.Second, 50}, {0, 10}}, retries: 2},
		{name: "the window moved by 9 s keeps one second", batches: []batch{{9 * time.Second, 50}, {0, 10}}, retries: 12},
		{name: "the window moved by 10 s keeps none", batches: []batch{{10 * time.Second, 50}, {0, 10}}, retries: 2},
		{name: "an earlier clock counts", batches: []batch{{0, 10}, {time.Second, 40}}, retries: 10},
		{name: "a clock from before the window does not count", batches: []batch{{0, 10}, {10 * time.Second, 40}}, retries: 2},
		{name: "no requests, no retries", retries: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &budget{}
			for _, bt := range tc.batches {
				var wg sync.WaitGroup
				for range bt.n {
					wg.Go(func() { b.request(now.Add(-bt.ago)) })
				}
				wg.Wait()
			}
			if got := b.slot.Load(); len(tc.batches) > 0 && got != now.Unix() {
				t.Errorf("window at second %d, want %d (now)", got, now.Unix())
			}
			got := 0
			for b.take(pol, now) {
				if got++; got > 1000 {
					t.Fatal("the budget never runs out")
				}
			}
			if got != tc.retries {
				t.Errorf("%d retries allowed, want %d", got, tc.retries)
			}
		})
	}
}
