package server

import (
	"sync"
	"testing"
	"time"
)

// state is what the pool holds: workers running, idle, and whether the reaper runs.
func (p *h2WorkerPool) state() (workers, idle int, reaping bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.workers, len(p.idle), p.reaping
}

// waitPool polls the pool until cond holds, 5 s at most.
func waitPool(t *testing.T, p *h2WorkerPool, what string, cond func(workers, idle int, reaping bool) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		w, i, r := p.state()
		if cond(w, i, r) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still %d workers, %d idle, reaper running %v after 5s", what, w, i, r)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestH2WorkerPool: a stream goes to an idle worker when there is one (one after the other,
// the same worker serves them all), a new worker starts only when none is idle (as many
// as streams served at once), the worker that went idle last serves next, and workers
// idle for idleFor end, with the reaper after the last of them; the pool starts over
// after that.
func TestH2WorkerPool(t *testing.T) {
	var mu sync.Mutex
	release := make(chan struct{})
	blocking := false
	p := &h2WorkerPool{idleFor: 200 * time.Millisecond}
	done := make(chan *Stream, 64)
	p.serve = func(s *Stream) {
		mu.Lock()
		b := blocking
		mu.Unlock()
		if b {
			<-release
		}
		done <- s
	}
	// One at a time: one worker serves them all.
	for range 5 {
		s := &Stream{}
		p.dispatch(s)
		if got := <-done; got != s {
			t.Fatal("a different stream was served")
		}
		waitPool(t, p, "after one stream", func(w, i int, _ bool) bool { return i == w })
	}
	if w, _, r := p.state(); w != 1 || !r {
		t.Fatalf("streams served one at a time: %d workers (want 1), reaper running %v (want true)", w, r)
	}
	// Four at once: four workers, and all idle after.
	mu.Lock()
	blocking = true
	mu.Unlock()
	for range 4 {
		p.dispatch(&Stream{})
	}
	if w, i, _ := p.state(); w != 4 || i != 0 {
		t.Fatalf("4 streams served at once: %d workers, %d idle; want 4, 0", w, i)
	}
	close(release)
	for range 4 {
		<-done
	}
	waitPool(t, p, "after 4 streams at once", func(w, i int, _ bool) bool { return w == 4 && i == 4 })
	mu.Lock()
	blocking = false
	mu.Unlock()
	// The last to go idle serves next.
	p.mu.Lock()
	top := p.idle[len(p.idle)-1]
	p.mu.Unlock()
	p.dispatch(&Stream{})
	<-done
	waitPool(t, p, "after one more", func(w, i int, _ bool) bool { return i == w })
	p.mu.Lock()
	again := p.idle[len(p.idle)-1] == top
	p.mu.Unlock()
	if !again {
		t.Error("the stream went to a worker other than the one that went idle last")
	}
	// Idle past idleFor: all end, the reaper too.
	waitPool(t, p, "idle workers past idleFor", func(w, i int, r bool) bool { return w == 0 && i == 0 && !r })
	p.dispatch(&Stream{})
	<-done
	if w, _, r := p.state(); w != 1 || !r {
		t.Fatalf("after the reaper ended: %d workers (want 1), reaper running %v (want true)", w, r)
	}
	waitPool(t, p, "the new worker idle past idleFor", func(w, i int, r bool) bool { return w == 0 && !r })
}
