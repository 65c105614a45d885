package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/config"
	"sluice/internal/connpool"
	"sluice/internal/h1"
	"sluice/internal/reason"
	"sluice/internal/testutil"
	"sluice/internal/upstream"
	"sluice/internal/upstream/balancer"
)

// recorder is a Downstream over an in-memory request and response, as a test stands in
// front of the proxy (like httptest.ResponseRecorder): the proxy needs nothing of the server.
type recorder struct {
	ctx    context.Context
	req    h1.Request
	body   io.Reader
	limit  int64
	status int
	header h1.Header
	out    bytes.Buffer
	// panicOnHead makes WriteHead panic (a bug in a downstream or a filter).
	panicOnHead bool
	aborted     bool
	closeAfter  bool
	errCode     reason.Code
}

// newRecorder parses raw (a request head) and takes body as the request body.
func newRecorder(t testing.TB, ctx context.Context, raw string, body string) *recorder {
	t.Helper()
	rd := &recorder{ctx: ctx, body: strings.NewReader(body)}
	if err := h1.ReadRequest(bufio.NewReader(strings.NewReader(raw)), &rd.req, h1.Limits{}); err != nil {
		t.Fatalf("parse %q: %v", raw, err)
	}
	return rd
}

func (r *recorder) Context() context.Context  { return r.ctx }
func (r *recorder) ClientIP() string          { return "192.0.2.1" }
func (r *recorder) TLS() *tls.ConnectionState { return nil }
func (r *recorder) RequestIDBytes() []byte    { return []byte("test-id") }
func (r *recorder) ClientGone() bool          { return false }
func (r *recorder) CloseAfter()               { r.closeAfter = true }
func (r *recorder) Request() *h1.Request      { return &r.req }
func (r *recorder) SetBodyLimit(n int64)      { r.limit = n }
func (r *recorder) BodyLimit() int64          { return r.limit }
func (r *recorder) ReadBody(p []byte) (int, error) {
	return r.body.Read(p)
}
func (r *recorder) BodyPending() bool       { return false }
func (r *recorder) BodyTrailer() *h1.Header { return &h1.Header{} }
func (r *recorder) WriteHead(status int, _ []byte, h *h1.Header, _ int64) error {
	if r.panicOnHead {
		panic("downstream bug")
	}
	r.status = status
	for _, f := range h.Fields {
		r.header.Add(string(f.Name), string(f.Value))
	}
	return nil
}
func (r *recorder) Write(p []byte) (int, error) { return r.out.Write(p) }
func (r *recorder) Flush() error                { return nil }
func (r *recorder) Finish(*h1.Header) error     { return nil }
func (r *recorder) Abort()                      { r.aborted = true }
func (r *recorder) Status() int                 { return r.status }
func (r *recorder) WriteError(e *reason.Error, _ string) {
	if r.status != 0 {
		r.aborted = true
		return
	}
	r.status, r.errCode = e.Status, e.Code
}

var _ Downstream = (*recorder)(nil)

// notifyingRecorder adds the allocation-free cancel hook that server.Exchange has.
type notifyingRecorder struct {
	*recorder
	onCancel func()
}

func (r *notifyingRecorder) OnCancel(f func()) { r.onCancel = f }

var _ CancelNotifier = (*notifyingRecorder)(nil)

// testRoute builds a route to one target at addr (see testRouteTo).
func testRoute(t testing.TB, addr string, opts connpool.Options, edit func(*config.Route, *config.Upstream)) (*Route, *connpool.Pool) {
	t.Helper()
	rt, pools := testRouteTo(t, []string{addr}, opts, edit)
	return rt, pools[0]
}

// testRouteTo builds a route to targets at addrs (round robin, in order), each with a pool
// of opts; edit may change the route's and upstream's config first.
func testRouteTo(t testing.TB, addrs []string, opts connpool.Options, edit func(*config.Route, *config.Upstream)) (*Route, []*connpool.Pool) {
	t.Helper()
	opts.Enabled = true
	var targets []*upstream.Target
	var pools []*connpool.Pool
	for _, a := range addrs {
		pool := connpool.New(a, opts, nil)
		t.Cleanup(func() { pool.Close(connpool.CloseShutdown) })
		targets = append(targets, &upstream.Target{Addr: a, Weight: 1, Pool: pool})
		pools = append(pools, pool)
	}
	u := &upstream.Upstream{ID: "b"}
	u.Swap(targets, balancer.NewWRR(targets))
	rc, uc := config.Route{ID: "r", Upstream: "b"}, config.Upstream{ID: "b"}
	if edit != nil {
		edit(&rc, &uc)
	}
	rt, err := NewRoute(rc, uc, u)
	if err != nil {
		t.Fatal(err)
	}
	return rt, pools
}

func testProxy() *Proxy { return New(slog.New(slog.DiscardHandler)) }

// TestServeWithoutServer: the proxy forwards a request from any Downstream.
func TestServeWithoutServer(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got", r.Method+" "+r.URL.Path+" "+string(b)+" xff="+r.Header.Get("X-Forwarded-For"))
		io.WriteString(w, "hello")
	}))
	defer be.Close()
	rt, _ := testRoute(t, be.Listener.Addr().String(), connpool.Options{}, nil)
	rd := newRecorder(t, context.Background(), "POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n", "body")
	var rec Record
	testProxy().Serve(rd, rt, &rec)
	if rd.status != 200 || rd.out.String() != "hello" || rec.Reason != "" {
		t.Fatalf("got %d %q (reason %q, %v)", rd.status, rd.out.String(), rec.Reason, rec.Err)
	}
	if got, _ := rd.header.Get("X-Got"); string(got) != "POST /p body xff=192.0.2.1" {
		t.Errorf("backend saw %q", got)
	}
}

// silentListener accepts connections and reads them without ever answering.
func silentListener(t *testing.T) (addr string, arrived chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	arrived = make(chan struct{}, 16)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, 4096)
				if _, err := c.Read(buf); err == nil {
					arrived <- struct{}{}
				}
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return ln.Addr().String(), arrived
}

// TestCancelStopsTheUpstreamWait: a canceled request context ends the wait for a silent
// backend at once, with the cause as the answer, not retried, and the pool does not take it
// for the backend's doing. Both ways a downstream can carry cancellation are covered: the
// cancel hook (server.Exchange) and a plain context (context.AfterFunc).
func TestCancelStopsTheUpstreamWait(t *testing.T) {
	for _, hook := range []bool{true, false} {
		t.Run(map[bool]string{true: "OnCancel", false: "AfterFunc"}[hook], func(t *testing.T) {
			addr, arrived := silentListener(t)
			rt, pool := testRoute(t, addr, connpool.Options{}, func(r *config.Route, u *config.Upstream) {
				u.Timeouts.Read = config.Duration(20 * time.Second)
			})
			ctx, cancel := context.WithCancelCause(context.Background())
			rd := newRecorder(t, ctx, "GET /slow HTTP/1.1\r\nHost: x\r\n\r\n", "")
			var ds Downstream = rd
			nr := &notifyingRecorder{recorder: rd}
			if hook {
				ds = nr
			}
			done := make(chan struct{})
			var rec Record
			go func() { defer close(done); testProxy().Serve(ds, rt, &rec) }()
			<-arrived
			cause := reason.New(503, reason.GatewayShutdown, "", errors.New("grace period ended"))
			cancel(cause)
			if hook {
				nr.onCancel() // what the server does right after canceling
			}
			select {
			case <-done:
			case <-time.After(2 * time.Second):
				t.Fatal("Serve still waiting for the upstream 2s after the request was canceled")
			}
			if rd.status != 503 || rec.Reason != reason.GatewayShutdown || rec.NumAttempts != 1 || rec.Retries != 0 {
				t.Fatalf("status %d reason %q attempts %d retries %d; want one attempt answered 503 gateway_shutting_down", rd.status, rec.Reason, rec.NumAttempts, rec.Retries)
			}
			s := pool.Snapshot()
			if s.Counters.ResetOnReuse != 0 || len(s.Conns) != 0 {
				t.Errorf("pool after a canceled exchange: %+v conns %v", s.Counters, s.Conns)
			}
		})
	}
}

// TestPanicGivesTheConnectionBack: a panic in the middle of an exchange (here in the
// downstream's WriteHead) still releases the upstream connection; a pool at max_conns 1
// then serves the next request instead of waiting forever for a lost slot.
func TestPanicGivesTheConnectionBack(t *testing.T) {
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }))
	defer be.Close()
	rt, pool := testRoute(t, be.Listener.Addr().String(), connpool.Options{MaxConns: 1, MaxPending: 1, QueueTimeout: time.Second}, nil)
	p := testProxy()
	func() {
		defer func() {
			if recover() == nil {
				t.Fatal("no panic")
			}
		}()
		rd := newRecorder(t, context.Background(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "")
		rd.panicOnHead = true
		p.Serve(rd, rt, &Record{})
	}()
	if s := pool.Snapshot(); len(s.Conns) != 0 {
		t.Fatalf("connections still checked out or pooled after the panic: %+v", s.Conns)
	}
	rd := newRecorder(t, context.Background(), "GET / HTTP/1.1\r\nHost: x\r\n\r\n", "")
	var rec Record
	p.Serve(rd, rt, &rec)
	if rd.status != 200 {
		t.Fatalf("request after the panic: %d %s (%v)", rd.status, rec.Reason, rec.Err)
	}
}

// TestUntouchedLargeBodyIsRetried: a body larger than retry.buffer_body streams to the
// backend, so it cannot be sent twice; but a failure before any of it was read past the
// buffered prefix (here: the first target refuses the connection) leaves it whole, and the
// POST goes to the next target with all its bytes.
func TestUntouchedLargeBodyIsRetried(t *testing.T) {
	var got atomic.Int64
	be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got.Store(int64(len(b)))
	}))
	defer be.Close()
	rt, _ := testRouteTo(t, []string{testutil.RefusingAddr(t), be.Listener.Addr().String()}, connpool.Options{}, nil)
	const size = 200 << 10 // above the default 64 KiB buffer_body
	body := strings.Repeat("x", size)
	rd := newRecorder(t, context.Background(), fmt.Sprintf("POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", size), body)
	var rec Record
	testProxy().Serve(rd, rt, &rec)
	if rd.status != 200 || got.Load() != size || rec.NumAttempts != 2 {
		t.Fatalf("status %d (%s), backend got %d bytes, %d attempts; want 200 with %d bytes after 2 attempts", rd.status, rec.Reason, got.Load(), rec.NumAttempts, size)
	}
}

// TestRouteBudgetIsTheUpstreams: the retry budget a route keeps after its first request is
// the one its upstream's id names: shared with the other routes to that upstream (a budget
// counts all of the upstream's requests), and still the one named after a reload's prune
// that keeps the upstream.
func TestRouteBudgetIsTheUpstreams(t *testing.T) {
	p := testProxy()
	rt1, _ := testRoute(t, "127.0.0.1:1", connpool.Options{}, nil)
	rt2, _ := testRoute(t, "127.0.0.1:1", connpool.Options{}, func(rc *config.Route, _ *config.Upstream) { rc.ID = "r2" })
	b := p.routeBudget(rt1)
	if p.routeBudget(rt2) != b || p.budgetFor("b") != b || p.routeBudget(rt1) != b {
		t.Fatal("the routes of one upstream do not share its budget")
	}
	p.PruneBudgets(func(id string) bool { return id == "b" })
	if p.budgetFor("b") != b || p.routeBudget(rt2) != b {
		t.Fatal("a prune that keeps the upstream changed its budget")
	}
}

// BenchmarkRetryStatus is what asking whether a relayed response is retried costs, for a
// status the route does not retry (every 2xx): once per proxied response.
func BenchmarkRetryStatus(b *testing.B) {
	rt, _ := testRoute(b, "127.0.0.1:1", connpool.Options{}, nil)
	rd := newRecorder(b, context.Background(), "GET /p HTTP/1.1\r\nHost: x\r\n\r\n", "")
	p := testProxy()
	var fwd forward
	var rec Record
	var r retrier
	fwd.init(rd, rt, nil)
	r.init(p, rd, rt, &fwd, &rec, time.Now())
	rec.add(Attempt{})
	b.ReportAllocs()
	for b.Loop() {
		if r.retryStatus(200) {
			b.Fatal("a 200 retried")
		}
	}
}
