package server

// Streams served on long-lived goroutines.
//
// The HTTP/2 library starts a goroutine per stream and calls the handler on it. A new
// goroutine starts with a small stack, and a proxied request runs deep (routing, plugins,
// the proxy, the upstream codec, logging): its stack was grown and copied several times per
// stream, about 9% of the gateway's CPU time under h2load (docs/design.md, "HTTP/2
// downstream: CPU per request"). So the library's goroutine hands the stream to a worker
// whose stack has already grown, and waits for it: two goroutine switches instead of the
// copies. Workers start when none is idle (so there are at most as many as streams served
// at once) and end after h2WorkerIdle without work.

import (
	"fmt"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
)

// h2WorkerIdle is how long an idle worker waits for a stream before it ends.
const h2WorkerIdle = 10 * time.Second

// h2Job is one stream handed to a worker. It belongs to the library's goroutine that waits
// for it (the Stream goes back to its pool on the worker, before done is signalled).
type h2Job struct {
	h        *h2Conn
	w        http.ResponseWriter
	r        *http.Request
	done     chan struct{}
	panicked any // what serving panicked with; http.ErrAbortHandler: reset the stream
}

var h2JobPool = sync.Pool{New: func() any { return &h2Job{done: make(chan struct{}, 1)} }}

// h2Jobs hands a job to an idle worker; unbuffered, so a send succeeds only when one is
// waiting.
var h2Jobs = make(chan *h2Job)

// serveOnWorker serves one stream on a worker and returns when it is done, with what
// serving panicked with (nil normally), for the caller to raise again on the library's
// goroutine, which recovers it as it recovers a handler's panic (the stream is reset).
func (h *h2Conn) serveOnWorker(w http.ResponseWriter, r *http.Request) any {
	j := h2JobPool.Get().(*h2Job)
	j.h, j.w, j.r = h, w, r
	select {
	case h2Jobs <- j:
	default:
		go h2Worker(j)
	}
	<-j.done
	v := j.panicked
	*j = h2Job{done: j.done}
	h2JobPool.Put(j)
	return v
}

func h2Worker(j *h2Job) {
	t := time.NewTimer(h2WorkerIdle)
	defer t.Stop()
	for {
		j.run()
		t.Reset(h2WorkerIdle)
		select {
		case j = <-h2Jobs:
		case <-t.C:
			return
		}
	}
}

// run serves the job's stream and signals the end; j must not be touched after.
func (j *h2Job) run() {
	defer func() {
		if v := recover(); v != nil {
			// A bug: the Stream is left to the garbage collector, and the panic is
			// raised again on the library's goroutine with this one's stack.
			j.panicked = v
			if v != http.ErrAbortHandler {
				j.panicked = fmt.Sprintf("%v\n\nworker goroutine stack:\n%s", v, debug.Stack())
			}
		}
		j.done <- struct{}{}
	}()
	s := streamPool.Get().(*Stream)
	s.h, s.w, s.r = j.h, j.w, j.r
	s.init()
	if s.admit() {
		s.h.sh.ServeH2(s)
	}
	if s.end() {
		j.panicked = http.ErrAbortHandler
	}
	s.release()
}
