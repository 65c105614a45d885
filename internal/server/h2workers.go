package server

// Streams on workers.
//
// A stream is served on a long-lived goroutine whose stack has already grown (a proxied
// request runs deep: routing, plugins, the proxy, the upstream codec, logging; a new
// goroutine per stream grew and copied its stack several times). A worker starts when none
// is idle, so there are at most as many as streams served at once.
//
// The idle workers are a stack: a stream goes to the one that went idle last (its stack
// and the data it touched are the likeliest to be in cache), and each waits on a channel of
// its own, a plain receive. Those that stayed at the bottom for h2WorkerIdle are ended by
// one reaper goroutine, which runs while any worker exists and counts time in its ticks (a
// worker notes the tick it went idle at, not the clock: no clock read per stream). Before, every worker waited in
// a select on a shared channel and its own idle timer, reset after each stream: under
// h2load (4 connections x 32 streams) that select and the timer's Reset were ~5% of the
// gateway's CPU (docs/design.md, "HTTP/2 streams mode: CPU per request").

import (
	"sync"
	"time"
)

// h2WorkerIdle is how long a worker stays idle, at least, before the reaper ends it (at
// most 1.5 times that).
const h2WorkerIdle = 10 * time.Second

// h2Workers serves the streams of every own-codec connection in the process.
var h2Workers = h2WorkerPool{idleFor: h2WorkerIdle, serve: serveOwnStream}

// h2WorkerPool is a stack of idle stream workers; mu guards the fields after it.
type h2WorkerPool struct {
	idleFor time.Duration
	serve   func(*Stream)

	mu      sync.Mutex
	idle    []*h2Worker // the most recently idle last
	workers int         // running, idle or not
	reaping bool        // the reaper runs
	tick    uint64      // the reaper's ticks, every idleFor/2
}

// h2Worker is one worker's hand-off: a stream to serve, or nil to end.
type h2Worker struct {
	next chan *Stream // buffered (1): dispatch never waits
	tick uint64       // the pool's tick when it went idle; guarded by the pool's mu
}

func dispatchStream(s *Stream) { h2Workers.dispatch(s) }

// dispatch serves s on the most recently idle worker, or on a new one.
func (p *h2WorkerPool) dispatch(s *Stream) {
	p.mu.Lock()
	if n := len(p.idle); n > 0 {
		w := p.idle[n-1]
		p.idle[n-1] = nil
		p.idle = p.idle[:n-1]
		p.mu.Unlock()
		w.next <- s
		return
	}
	p.workers++
	reap := !p.reaping
	p.reaping = true
	p.mu.Unlock()
	if reap {
		go p.reap()
	}
	go p.run(&h2Worker{next: make(chan *Stream, 1)}, s)
}

// run serves s, then each stream it is handed, until it is handed nil.
func (p *h2WorkerPool) run(w *h2Worker, s *Stream) {
	for s != nil {
		p.serve(s)
		p.mu.Lock()
		w.tick = p.tick
		p.idle = append(p.idle, w)
		p.mu.Unlock()
		s = <-w.next
	}
}

// reap ends, every idleFor/2, the workers idle for idleFor or more (the bottom of the
// stack): those that went idle three ticks ago or earlier (idle since before the tick two
// intervals back), and returns when no worker is left.
func (p *h2WorkerPool) reap() {
	t := time.NewTicker(p.idleFor / 2)
	defer t.Stop()
	for range t.C {
		p.mu.Lock()
		p.tick++
		k := 0
		for k < len(p.idle) && p.tick-p.idle[k].tick >= 3 {
			p.idle[k].next <- nil
			k++
		}
		n := copy(p.idle, p.idle[k:])
		clear(p.idle[n:])
		p.idle = p.idle[:n]
		p.workers -= k
		done := p.workers == 0
		if done {
			p.reaping = false
		}
		p.mu.Unlock()
		if done {
			return
		}
	}
}
