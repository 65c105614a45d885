package h2pool

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/reason"
	"sluice/internal/testutil"
)

// longBackend is a Go h2c server whose /long/<n> streams answer their head at once and then
// hold the stream open until release(n) (a gRPC server-stream, a slow download); every
// other path answers "ok" at once. It counts its connections.
type longBackend struct {
	srv   *httptest.Server
	conns atomic.Int64

	mu   sync.Mutex
	hold map[string]chan struct{}
}

func newLongBackend(t *testing.T) *longBackend {
	t.Helper()
	b := &longBackend{hold: map[string]chan struct{}{}}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if ch := b.gate(r.URL.Path); ch != nil {
			io.WriteString(w, "head.")
			w.(http.Flusher).Flush()
			select {
			case <-ch:
			case <-r.Context().Done():
				return
			}
			io.WriteString(w, "done")
			return
		}
		io.WriteString(w, "ok")
	}))
	b.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			b.conns.Add(1)
		}
	}
	var p http.Protocols
	p.SetUnencryptedHTTP2(true)
	b.srv.Config.Protocols = &p
	b.srv.Start()
	t.Cleanup(func() {
		b.mu.Lock()
		for _, ch := range b.hold {
			select {
			case <-ch:
			default:
				close(ch)
			}
		}
		b.mu.Unlock()
		b.srv.Close()
	})
	return b
}

func (b *longBackend) gate(path string) chan struct{} {
	if len(path) < 6 || path[:6] != "/long/" {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	ch := b.hold[path]
	if ch == nil {
		ch = make(chan struct{})
		b.hold[path] = ch
	}
	return ch
}

func (b *longBackend) release(path string) { close(b.gate(path)) }

// longStream is a stream held open by the backend.
type longStream struct {
	a    Attempt
	resp *http.Response
}

// startLong opens path's stream through p and returns once its head arrived (within 2s).
func startLong(t *testing.T, p *Pool, path string) *longStream {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	timer := time.AfterFunc(2*time.Second, cancel) // no head in time: give up
	defer timer.Stop()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.Addr()+path, nil)
	ls := &longStream{}
	resp, err := p.RoundTrip(req, &ls.a)
	if err != nil {
		t.Fatalf("long stream %s: %v", path, err)
	}
	ls.resp = resp
	head := make([]byte, 5)
	if _, err := io.ReadFull(resp.Body, head); err != nil || string(head) != "head." || !timer.Stop() {
		t.Fatalf("long stream %s: head %q, %v", path, head, err)
	}
	return ls
}

// finish reads the rest of ls (which must arrive whole: draining never cuts a stream) and
// ends it.
func (ls *longStream) finish(t *testing.T, p *Pool) {
	t.Helper()
	rest, err := io.ReadAll(ls.resp.Body)
	ls.resp.Body.Close()
	p.Done(&ls.a)
	if err != nil || string(rest) != "done" {
		t.Errorf("long stream on conn %d: rest %q, %v; want it whole", ls.a.ConnID, rest, err)
	}
}

// short sends a request bounded by d and reports its connection, how long it took, and its
// error.
func short(p *Pool, d time.Duration) (uint64, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+p.Addr()+"/r", nil)
	start := time.Now()
	var a Attempt
	resp, err := p.RoundTrip(req, &a)
	if err == nil {
		var body []byte
		body, err = io.ReadAll(resp.Body)
		resp.Body.Close()
		p.Done(&a)
		if err == nil && string(body) != "ok" {
			err = errors.New("body " + string(body))
		}
	}
	return a.ConnID, time.Since(start), err
}

// TestRetiringFreesSlot: at max_conns 1, a connection retiring (max_requests, max_lifetime)
// while a long stream runs on it does not hold the slot: new requests complete at once on
// a new connection, the long stream runs to its end, and the retired connection is then
// closed for its reason. Counting draining connections against max_conns (the old rule, or
// max_draining 0) makes the new requests wait out their 2s deadline.
func TestRetiringFreesSlot(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  func(*Options)
		why  CloseReason
	}{
		{"max_requests", func(o *Options) { o.MaxRequests = 1 }, CloseMaxRequests},
		{"max_lifetime", func(o *Options) { o.MaxLifetime = 150 * time.Millisecond }, CloseMaxLifetime},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newLongBackend(t)
			o := testOptions()
			o.MaxConns, o.MaxDraining = 1, 1
			tc.set(&o)
			p := newPool(t, b.srv.Listener.Addr().String(), o)
			long := startLong(t, p, "/long/1")
			testutil.WaitFor(t, 2*time.Second, "the long stream's connection retiring", func() bool {
				s := p.Snapshot()
				return s.Draining == 1 && len(s.Conns) > 0 && s.Conns[0].Retiring == tc.why
			})
			for i := range 3 {
				id, took, err := short(p, 2*time.Second)
				if err != nil {
					t.Fatalf("request %d beside the draining connection: %v after %s", i, err, took.Round(time.Millisecond))
				}
				if id == long.a.ConnID {
					t.Errorf("request %d went on the retiring connection %d", i, id)
				}
				// A dial and a response on loopback: milliseconds (a loaded machine: 100s).
				if took > time.Second {
					t.Errorf("request %d took %s; want it prompt", i, took)
				}
			}
			if s := p.Snapshot(); s.Closes[tc.why] > int64(b.conns.Load())-1 {
				t.Errorf("closes %v with %d backend connections: the long stream's connection closed early", s.Closes, b.conns.Load())
			}
			b.release("/long/1")
			long.finish(t, p)
			testutil.WaitFor(t, 2*time.Second, "the drained connection closed", func() bool {
				for _, c := range p.Snapshot().Conns {
					if c.ID == long.a.ConnID {
						return false
					}
				}
				return true
			})
			s := p.Snapshot()
			for _, r := range s.History {
				if r.ID == long.a.ConnID && r.Reason != tc.why {
					t.Errorf("the long stream's connection closed for %s; want %s", r.Reason, tc.why)
				}
			}
			t.Logf("backend connections %d, closes %v", b.conns.Load(), s.Closes)
		})
	}
}

// TestDrainingBound: draining connections are kept beyond max_conns only up to
// max_draining. At max_conns 1, max_draining 1 and max_requests 1, two long streams leave
// two draining connections; a third request waits (pool_queue_timeout when its deadline
// ends first, no dial) and goes through once one long stream ended. Without the bound the
// pool would dial a connection per long stream without end.
func TestDrainingBound(t *testing.T) {
	b := newLongBackend(t)
	o := testOptions()
	o.MaxConns, o.MaxDraining, o.MaxRequests = 1, 1, 1
	p := newPool(t, b.srv.Listener.Addr().String(), o)
	l1 := startLong(t, p, "/long/1")
	l2 := startLong(t, p, "/long/2")
	if s := p.Snapshot(); s.Draining != 2 || l1.a.ConnID == l2.a.ConnID {
		t.Fatalf("draining %d, long streams on conns %d and %d; want 2 draining connections", s.Draining, l1.a.ConnID, l2.a.ConnID)
	}
	_, took, err := short(p, 300*time.Millisecond)
	var re *reason.Error
	if !errors.As(err, &re) || re.Code != reason.PoolQueueTimeout || re.Status != 503 {
		t.Fatalf("request with 2 draining connections: %v after %s; want 503 pool_queue_timeout", err, took)
	}
	if n := b.conns.Load(); n != 2 {
		t.Errorf("backend saw %d connections; want 2 (no dial past max_conns+max_draining)", n)
	}
	type result struct {
		id  uint64
		err error
	}
	done := make(chan result, 1)
	go func() {
		id, _, err := short(p, 5*time.Second)
		done <- result{id, err}
	}()
	time.Sleep(50 * time.Millisecond) // it waits
	b.release("/long/1")
	l1.finish(t, p)
	select {
	case r := <-done:
		if r.err != nil {
			t.Fatalf("request after a long stream ended: %v", r.err)
		}
		if r.id == l1.a.ConnID || r.id == l2.a.ConnID {
			t.Errorf("request went on draining connection %d", r.id)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("request still waiting 3s after a draining connection closed")
	}
	b.release("/long/2")
	l2.finish(t, p)
	if n := b.conns.Load(); n != 3 {
		t.Errorf("backend saw %d connections; want 3", n)
	}
}

// TestGoAwayFreesSlot: at max_conns 1, a connection the backend sent GOAWAY on (a graceful
// restart: Go's Server.Shutdown) while a long stream runs on it is draining too: a request
// goes at once to a new connection (the restarted server on the same port), and the long
// stream ends whole on the old one.
func TestGoAwayFreesSlot(t *testing.T) {
	old := newLongBackend(t)
	addr := old.srv.Listener.Addr().String()
	o := testOptions()
	o.MaxConns, o.MaxDraining = 1, 1
	p := newPool(t, addr, o)
	long := startLong(t, p, "/long/1")
	shut := make(chan error, 1)
	go func() { shut <- old.srv.Config.Shutdown(context.Background()) }() // GOAWAY; waits for the stream
	testutil.WaitFor(t, 2*time.Second, "the connection draining after GOAWAY", func() bool { return p.Snapshot().Draining == 1 })
	ln, err := net.Listen("tcp", addr) // the restarted backend
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	restarted := &http.Server{Handler: old.srv.Config.Handler, Protocols: old.srv.Config.Protocols}
	go restarted.Serve(ln)
	t.Cleanup(func() { restarted.Close() })
	id, took, err := short(p, 2*time.Second)
	if err != nil || id == long.a.ConnID || took > time.Second {
		t.Fatalf("request beside the GOAWAY'd connection: conn %d (long stream's %d), %v after %s; want a prompt answer on a new connection", id, long.a.ConnID, err, took)
	}
	old.release("/long/1")
	long.finish(t, p)
	if err := <-shut; err != nil {
		t.Errorf("old backend shutdown: %v", err)
	}
}

// TestMaxRequestsAtMaxConns: with draining connections outside max_conns 1, the replacement
// dialed at retirement and the requests that wait for it still put at most max_requests
// streams on any connection, under 6 workers (GET/POST mix, streamed responses), with no
// failure and each request processed once; the pool never holds more than max_conns +
// max_draining connections.
func TestMaxRequestsAtMaxConns(t *testing.T) {
	const maxReq = 5
	b := newGoH2Backend(t, nil)
	o := testOptions()
	o.MaxConns, o.MaxDraining, o.MaxRequests = 1, 1, maxReq
	p := newPool(t, b.srv.Listener.Addr().String(), o)
	var most atomic.Int64
	stop := make(chan struct{})
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			most.Store(max(most.Load(), int64(len(p.Snapshot().Conns))))
		}
	}()
	ids := load(t, p, b, "http", "", 6, 15, func() bool { return false })
	close(stop)
	<-watched
	if n := b.check(t, ids); n > maxReq {
		t.Errorf("a connection carried %d requests; max_requests is %d", n, maxReq)
	}
	if m := most.Load(); m > 2 {
		t.Errorf("the pool held %d connections; want at most max_conns+max_draining = 2", m)
	}
	t.Logf("%d requests, %d backend connections, at most %d open at once", len(ids), b.conns.Load(), most.Load())
}
