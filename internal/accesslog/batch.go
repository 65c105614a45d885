package accesslog

// Batching. A request appends its finished line to the current batch under a mutex: a copy of
// a few hundred bytes, no system call. A batch is written with one write(2) when it reaches
// BatchSize (by the request that filled it, after it has let go of that mutex), when
// FlushInterval passes (by a timer goroutine), and before the destination changes (SetOutput,
// Reopen) or the Logger closes. Full batches wait in a queue and whoever writes takes the whole
// queue under a second mutex, so batches go out in the order they filled, lines keep their
// order, and a slow write never holds the lock the other requests append under. The request
// that fills a batch writes it itself rather than waking a writer goroutine: on a busy machine
// a woken goroutine may not run for milliseconds, and meanwhile batch after batch would need a
// new buffer; here one or two buffers are in use.
//
// Limits and losses. Batches waiting to be written hold at most MaxPending bytes; a request
// that would go beyond it waits until some have been written (back-pressure: a disk that
// is slow but working slows the requests that log, it does not lose lines). A write that fails
// (a full disk, a closed pipe) does not stall the requests: the lines of that batch that did
// not reach the destination are counted as dropped in [Stats], the error is counted and
// logged (at most once per ErrorLogInterval, with the lines lost since the last report), and
// the next batch is tried again. Waiting for a failing disk instead would turn a full log
// partition into an outage of the gateway: nginx also drops the line and logs the error. If a
// failed write stopped in the middle of a line, the next write starts with a newline so that
// every later line is whole. Lines written after Close are dropped and counted.

import (
	"bytes"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

const (
	// BatchSize is the size at which a batch is queued and written.
	BatchSize = 64 << 10
	// MaxPending bounds the bytes of batches waiting to be written (and being written);
	// beyond it, Write waits.
	MaxPending = 16 * BatchSize
	// FlushInterval is the longest a line waits in a batch before it is written.
	FlushInterval = 100 * time.Millisecond
	// ErrorLogInterval spaces the error log's reports of failed writes.
	ErrorLogInterval = 10 * time.Second
	// maxSpare is how many written batch buffers are kept for reuse.
	maxSpare = 4
)

// Logger writes access log lines. A nil *Logger discards everything.
type Logger struct {
	mu      sync.Mutex
	space   sync.Cond // signaled (under mu) when pending bytes were written
	cur     []byte    // the batch lines are appended to
	queue   [][]byte  // full batches, oldest first
	pending int       // bytes in queue and in the batches being written
	spare   [][]byte  // written batch buffers for reuse
	closed  bool      // Close has taken the last batch: later lines are dropped
	stats   Stats     // under mu

	// wmu serializes writing: one batch list at a time goes out, in the order the batches
	// were taken, and SetOutput switches the destination between two batch lists.
	wmu      sync.Mutex
	w        io.Writer
	closer   io.Closer
	dest     string   // the destination SetOutput last set, for Reopen
	taken    [][]byte // the batches being written (reused)
	broken   bool     // the last failed write stopped mid-line
	errLog   *slog.Logger
	reported time.Time // when a failed write was last logged
	unlogged uint64    // lines lost since that report

	done     chan struct{}
	wg       sync.WaitGroup
	interval time.Duration
	off      atomic.Bool // lines are dropped (destination "off"); see output.go
}

// Stats counts what became of the lines given to [Logger.Write].
type Stats struct {
	Written     uint64 // lines written to a destination whole
	Dropped     uint64 // lines lost: a failed write, or written after Close
	WriteErrors uint64 // writes that failed
}

// New returns a Logger writing to w. If w is an io.Closer, Close closes it.
func New(w io.Writer) *Logger { return newLogger(w, FlushInterval) }

func newLogger(w io.Writer, interval time.Duration) *Logger {
	l := &Logger{
		w:        w,
		cur:      make([]byte, 0, BatchSize),
		queue:    make([][]byte, 0, MaxPending/BatchSize+1),
		taken:    make([][]byte, 0, MaxPending/BatchSize+2),
		done:     make(chan struct{}),
		interval: interval,
	}
	l.space.L = &l.mu
	if c, ok := w.(io.Closer); ok {
		l.closer = c
	}
	l.wg.Add(1)
	go l.writer()
	return l
}

// SetErrorLog sets where failed writes are reported (nil: nowhere; they are still counted).
func (l *Logger) SetErrorLog(log *slog.Logger) {
	l.wmu.Lock()
	l.errLog = log
	l.wmu.Unlock()
}

// Stats returns the counts so far.
func (l *Logger) Stats() Stats {
	if l == nil {
		return Stats{}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.stats
}

// writer writes the current batch every interval.
func (l *Logger) writer() {
	defer l.wg.Done()
	t := time.NewTicker(l.interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.flush(true)
		case <-l.done:
			return
		}
	}
}

// Flush writes every line given to Write so far (before it returns).
func (l *Logger) Flush() {
	if l != nil {
		l.flush(true)
	}
}

// flush writes the queued batches and, with all, the current one.
func (l *Logger) flush(all bool) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	l.flushLocked(all, false)
}

// flushLocked takes the queued batches (and the current one, with all) and writes them. With
// close, finding nothing to take marks the Logger closed in the same critical section, so
// that no line slips in between unwritten and uncounted. It reports whether it wrote anything.
// The caller holds wmu.
func (l *Logger) flushLocked(all, close bool) bool {
	l.mu.Lock()
	l.taken = append(l.taken[:0], l.queue...)
	clear(l.queue)
	l.queue = l.queue[:0]
	if all && len(l.cur) > 0 {
		l.taken = append(l.taken, l.cur)
		l.pending += len(l.cur)
		l.cur = l.spareBuf()
	}
	if len(l.taken) == 0 {
		if close {
			l.closed = true
			l.space.Broadcast() // nothing is pending; a waiter (none expected) drops its line
		}
		l.mu.Unlock()
		return false
	}
	l.mu.Unlock()
	var written, lost uint64
	var errs int
	for _, b := range l.taken {
		w, n, err := l.writeBatch(b)
		written += w
		if err != nil {
			errs++
			lost += n
			l.report(err, n)
		}
	}
	l.mu.Lock()
	for i, b := range l.taken {
		l.pending -= len(b)
		if len(l.spare) < maxSpare && cap(b) == BatchSize {
			l.spare = append(l.spare, b[:0])
		}
		l.taken[i] = nil
	}
	l.stats.Written += written
	l.stats.Dropped += lost
	l.stats.WriteErrors += uint64(errs)
	l.space.Broadcast()
	l.mu.Unlock()
	return true
}

// writeBatch writes b and returns the lines written whole and, on an error, the lines lost.
func (l *Logger) writeBatch(b []byte) (written, lost uint64, err error) {
	if l.broken {
		if _, err := l.w.Write(newline); err != nil {
			return 0, uint64(bytes.Count(b, newline)), err
		}
		l.broken = false
	}
	n, err := l.w.Write(b)
	written = uint64(bytes.Count(b[:n], newline))
	if err == nil && n < len(b) {
		err = io.ErrShortWrite
	}
	if err != nil {
		lost = uint64(bytes.Count(b[n:], newline))
		l.broken = n > 0 && b[n-1] != '\n'
	}
	return written, lost, err
}

var newline = []byte{'\n'}

// report logs a failed write, at most once per ErrorLogInterval. The caller holds wmu.
func (l *Logger) report(err error, lost uint64) {
	l.unlogged += lost
	if l.errLog == nil || time.Since(l.reported) < ErrorLogInterval {
		return
	}
	l.errLog.Error("access log write failed; lines lost", "access_log", l.dest, "err", err,
		"lines_lost", l.unlogged, "next_report_after", ErrorLogInterval.String())
	l.reported, l.unlogged = time.Now(), 0
}

// spareBuf returns an empty batch buffer. The caller holds mu.
func (l *Logger) spareBuf() []byte {
	if n := len(l.spare); n > 0 {
		b := l.spare[n-1]
		l.spare = l.spare[:n-1]
		return b
	}
	return make([]byte, 0, BatchSize)
}

// Write ends the line and adds it to the current batch. If the batch is full, Write queues
// it (waiting while MaxPending bytes wait to be written) and then writes the queue.
func (l *Logger) Write(ln *Line) {
	if l == nil || ln == nil {
		return
	}
	ln.finish()
	queued := false
	l.mu.Lock()
	switch {
	case l.off.Load(): // a line begun before SetOutput turned the log off is dropped
	case l.closed:
		l.stats.Dropped++
	default:
		if len(l.cur)+len(ln.b) > cap(l.cur) && len(l.cur) > 0 {
			queued = l.handOff()
		}
		if l.closed {
			l.stats.Dropped++
		} else {
			l.cur = append(l.cur, ln.b...) // a line longer than a batch grows it
		}
	}
	l.mu.Unlock()
	if cap(ln.b) <= 16<<10 {
		linePool.Put(ln)
	}
	if queued {
		l.flush(false)
	}
}

// handOff queues the current batch, waiting while MaxPending bytes wait to be written, and
// reports whether it did (not if the Logger closed meanwhile). The caller holds mu.
func (l *Logger) handOff() bool {
	for l.pending > 0 && l.pending+len(l.cur) > MaxPending && !l.closed {
		l.space.Wait()
	}
	if l.closed {
		return false
	}
	l.queue = append(l.queue, l.cur)
	l.pending += len(l.cur)
	l.cur = l.spareBuf()
	return true
}

// Close writes every line so far (including lines that arrive while it writes), stops the
// writer and closes the destination. Lines written after Close are dropped and counted.
func (l *Logger) Close() error {
	if l == nil {
		return nil
	}
	close(l.done)
	l.wg.Wait()
	l.wmu.Lock()
	defer l.wmu.Unlock()
	for l.flushLocked(true, true) {
	}
	var err error
	if l.closer != nil {
		err = l.closer.Close()
	}
	return err
}
