package h2pool

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"sluice/internal/testutil"
)

func testOptions() Options {
	return Options{ConnectTimeout: time.Second, IdleTimeout: time.Minute, Learn: true, SafetyFraction: 0.85,
		PingAfterIdle: time.Minute, ReadIdleTimeout: 0, PingTimeout: time.Second, SweepInterval: 20 * time.Millisecond}
}

func newBackend(t *testing.T, o testutil.RacyH2Options) *testutil.RacyH2 {
	t.Helper()
	b, err := testutil.NewRacyH2(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b
}

func newPool(t *testing.T, addr string, o Options) *Pool {
	t.Helper()
	p := New(addr, o, slog.New(slog.DiscardHandler))
	t.Cleanup(func() { p.Close(CloseShutdown) })
	return p
}

// do sends one request with id through p: a POST carries "body-<id>".
func do(p *Pool, scheme, id string, post bool) (Attempt, error) {
	a, b, err := send(p, scheme, id, post)
	if err == nil && !strings.HasPrefix(string(b), "ok "+id+" ") {
		err = fmt.Errorf("body %q", b)
	}
	return a, err
}

// send sends one request with id through p (a POST carries "body-<id>") and returns the
// response body, read whole.
func send(p *Pool, scheme, id string, post bool) (Attempt, []byte, error) {
	var body io.Reader
	method := "GET"
	if post {
		method, body = "POST", strings.NewReader("body-"+id)
	}
	req, _ := http.NewRequest(method, scheme+"://"+p.Addr()+"/r", body)
	req.Header.Set("x-test-id", id)
	var a Attempt
	resp, err := p.RoundTrip(req, &a)
	if err != nil {
		return a, nil, err
	}
	defer p.Done(&a)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return a, b, err
}

// TestUnprocessedIsProven runs a GET/POST mix against a backend that sends GOAWAY below
// streams in flight and refuses streams at random, for h2c and h2: every stream the pool
// reports as unprocessed was indeed not processed, every other stream succeeded and was
// processed exactly once, and no other failure happens.
func TestUnprocessedIsProven(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, tc := range []struct {
		name   string
		scheme string
		tls    bool
	}{{"h2c", "http", false}, {"h2", "https", true}} {
		t.Run(tc.name, func(t *testing.T) {
			bo := testutil.RacyH2Options{GoAwayEvery: 6, RefusePercent: 10, Delay: 2 * time.Millisecond, HeaderTableSize: -1}
			o := testOptions()
			if tc.tls {
				bo.TLS = ca.ServerConfig(t, "127.0.0.1")
				o.TLS = &tls.Config{RootCAs: ca.Pool(), ServerName: "127.0.0.1"}
			}
			b := newBackend(t, bo)
			p := newPool(t, b.Addr(), o)
			var unprocessed, ok atomic.Int64
			var wg sync.WaitGroup
			for w := range 8 {
				wg.Go(func() {
					for i := range 40 {
						id := fmt.Sprintf("%d-%d", w, i)
						a, err := do(p, tc.scheme, id, i%2 == 0)
						switch {
						case errors.Is(err, ErrUnprocessed):
							unprocessed.Add(1)
							if !a.Unprocessed {
								t.Errorf("%s: ErrUnprocessed without Attempt.Unprocessed", id)
							}
							if n := b.Processed(id); n != 0 {
								t.Errorf("%s: reported unprocessed, but the backend processed it %d times", id, n)
							}
						case err != nil:
							t.Errorf("%s: %v", id, err)
						default:
							ok.Add(1)
							if n := b.Processed(id); n != 1 {
								t.Errorf("%s: succeeded, processed %d times", id, n)
							}
						}
					}
				})
			}
			wg.Wait()
			if unprocessed.Load() == 0 || b.GoAways.Load() == 0 || b.Refused.Load() == 0 {
				t.Errorf("the backend did not race: %d unprocessed, %d GOAWAYs, %d refused", unprocessed.Load(), b.GoAways.Load(), b.Refused.Load())
			}
			if b.BadBodies.Load() != 0 {
				t.Errorf("%d POST bodies arrived wrong", b.BadBodies.Load())
			}
			s := p.Snapshot()
			if s.Counters.Unprocessed != unprocessed.Load() || s.Closes[CloseGoAway] == 0 {
				t.Errorf("snapshot counters %+v closes %v; want %d unprocessed and goaway closes", s.Counters, s.Closes, unprocessed.Load())
			}
			t.Logf("%d ok, %d unprocessed; backend: %d GOAWAYs, %d refused, %d conns", ok.Load(), unprocessed.Load(), b.GoAways.Load(), b.Refused.Load(), b.Accepted.Load())
		})
	}
}

// TestMaxConcurrentStreams: a backend allowing 2 streams per connection never sees more,
// and the pool opens more connections for 8 concurrent requests.
func TestMaxConcurrentStreams(t *testing.T) {
	b := newBackend(t, testutil.RacyH2Options{MaxConcurrentStreams: 2, Delay: 20 * time.Millisecond, HeaderTableSize: -1})
	p := newPool(t, b.Addr(), testOptions())
	if _, err := do(p, "http", "warm", false); err != nil { // SETTINGS learned
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := do(p, "http", fmt.Sprint(i), i%2 == 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if peak := b.PeakStreams.Load(); peak > 2 {
		t.Errorf("backend saw %d concurrent streams on a connection; it allows 2", peak)
	}
	if n := b.Accepted.Load(); n < 4 {
		t.Errorf("%d connections for 8 concurrent requests at 2 streams each; want >= 4", n)
	}
}

// TestColdBurstWaitsForSettings: a burst on a cold pool waits for the first connection's
// SETTINGS instead of dialing a connection per request, and then shares that connection.
func TestColdBurstWaitsForSettings(t *testing.T) {
	b := newBackend(t, testutil.RacyH2Options{Delay: 20 * time.Millisecond, HeaderTableSize: -1})
	p := newPool(t, b.Addr(), testOptions())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			if _, err := do(p, "http", fmt.Sprint(i), false); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := b.Accepted.Load(); n != 1 {
		t.Errorf("%d connections for a burst of 8 on a cold pool; want 1", n)
	}
}

// TestHeaderTableSize: a backend that allows no HPACK dynamic table decodes every request
// (the encoder follows SETTINGS_HEADER_TABLE_SIZE; Kong/kong#8316).
func TestHeaderTableSize(t *testing.T) {
	b := newBackend(t, testutil.RacyH2Options{HeaderTableSize: 0})
	p := newPool(t, b.Addr(), testOptions())
	for i := range 20 {
		if _, err := do(p, "http", fmt.Sprintf("same-header-%d", i), false); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if n := b.HPACKErrors.Load(); n != 0 {
		t.Errorf("%d HPACK decoding errors at the backend", n)
	}
	if n := b.Accepted.Load(); n != 1 {
		t.Errorf("%d connections; want 1 (the dynamic table size must not break the connection)", n)
	}
}

// TestPingBeforeReuse: a connection idle past PingAfterIdle is PINGed before a stream goes
// on it; one whose backend stopped answering is retired (ping_timeout) and the request
// succeeds on a new connection.
func TestPingBeforeReuse(t *testing.T) {
	var silent atomic.Bool
	b := newBackend(t, testutil.RacyH2Options{HeaderTableSize: -1, Silent: &silent})
	o := testOptions()
	o.PingAfterIdle, o.PingTimeout = 50*time.Millisecond, 200*time.Millisecond
	p := newPool(t, b.Addr(), o)
	if _, err := do(p, "http", "a", false); err != nil {
		t.Fatal(err)
	}
	time.Sleep(80 * time.Millisecond)
	if _, err := do(p, "http", "b", false); err != nil {
		t.Fatal(err)
	}
	if s := p.Snapshot(); s.Counters.PingChecks != 1 || b.Pings.Load() != 1 || b.Accepted.Load() != 1 {
		t.Fatalf("after an idle reuse: %d ping checks, %d pings at the backend, %d conns; want 1, 1, 1", s.Counters.PingChecks, b.Pings.Load(), b.Accepted.Load())
	}
	silent.Store(true) // the first connection goes silent; a new one is served
	time.Sleep(80 * time.Millisecond)
	done := make(chan error, 1)
	go func() { _, err := do(p, "http", "c", false); done <- err }()
	testutil.WaitFor(t, time.Second, "condition", func() bool { return p.Snapshot().Counters.PingFailures == 1 })
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s := p.Snapshot()
	if len(s.History) != 1 || s.History[0].Reason != ClosePingTimeout {
		t.Errorf("history %+v; want one connection closed for ping_timeout", s.History)
	}
}

// TestReadIdlePing: a connection that reads nothing for ReadIdleTimeout is PINGed; a backend
// that went silent gets it retired with ping_timeout.
func TestReadIdlePing(t *testing.T) {
	var silent atomic.Bool
	b := newBackend(t, testutil.RacyH2Options{HeaderTableSize: -1, Silent: &silent})
	o := testOptions()
	o.ReadIdleTimeout, o.PingTimeout = 100*time.Millisecond, 100*time.Millisecond
	p := newPool(t, b.Addr(), o)
	if _, err := do(p, "http", "a", false); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 2*time.Second, "condition", func() bool { return b.Pings.Load() >= 1 })
	if n := len(p.Snapshot().Conns); n != 1 {
		t.Fatalf("%d conns after an answered read-idle PING; want 1", n)
	}
	silent.Store(true)
	testutil.WaitFor(t, 2*time.Second, "condition", func() bool {
		s := p.Snapshot()
		return len(s.History) == 1 && s.History[0].Reason == ClosePingTimeout
	})
}

// TestReadIdleNotWhileReading: a connection that keeps reading (a response streaming in
// pieces far more often than ReadIdleTimeout) gets no read-idle PING.
func TestReadIdleNotWhileReading(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for range 40 {
			w.Write([]byte("x"))
			w.(http.Flusher).Flush()
			time.Sleep(25 * time.Millisecond)
		}
	}))
	var protos http.Protocols
	protos.SetUnencryptedHTTP2(true)
	srv.Config.Protocols = &protos
	srv.Start()
	t.Cleanup(srv.Close)
	o := testOptions()
	o.ReadIdleTimeout = 400 * time.Millisecond // 16 pieces apart; the response takes 1 s
	p := newPool(t, srv.Listener.Addr().String(), o)
	req, _ := http.NewRequest("GET", "http://backend/stream", nil)
	resp := roundTrip(t, p, req)
	if b, err := io.ReadAll(resp.Body); err != nil || len(b) != 40 {
		t.Fatalf("body %q, %v", b, err)
	}
	resp.Body.Close()
	if n := p.Snapshot().Counters.ReadIdlePings; n != 0 {
		t.Errorf("%d read-idle PINGs on a connection that read every 25 ms; want 0", n)
	}
}

// TestLearnIdleClose: a backend that closes idle connections (GOAWAY, then close) at 300ms
// teaches the pool its idle timeout, and the pool then closes idle connections itself first.
func TestLearnIdleClose(t *testing.T) {
	b := newBackend(t, testutil.RacyH2Options{HeaderTableSize: -1, IdleClose: 300 * time.Millisecond})
	o := testOptions()
	// The pool then closes at half the learned value (~150ms of idle), the backend at 300ms:
	// a margin a starved run's late sweep does not eat (at 0.85 it was ~45ms). A pool that
	// does not apply what it learned still loses the race by far.
	o.SafetyFraction = 0.5
	p := newPool(t, b.Addr(), o)
	if _, err := do(p, "http", "a", false); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 2*time.Second, "condition", func() bool { return p.Snapshot().Learned > 0 })
	s := p.Snapshot()
	if s.Learned < 250*time.Millisecond || s.Learned > 450*time.Millisecond {
		t.Errorf("learned %s; want about 300ms", s.Learned)
	}
	if len(s.History) != 1 || s.History[0].Reason != CloseGoAway || s.History[0].GoAwayCode != "NO_ERROR" {
		t.Errorf("history %+v; want a goaway close with NO_ERROR", s.History)
	}
	if _, err := do(p, "http", "b", false); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 2*time.Second, "condition", func() bool { return len(p.Snapshot().History) == 2 })
	if s := p.Snapshot(); s.History[1].Reason != CloseLearnedIdle {
		// The pool closes at SafetyFraction x learned (~150ms of idle), the backend at 300ms
		// of its own idle. Say how it lost.
		t.Errorf("second close %+v (lived %s); want learned_timeout (before the backend's close); learned %s, effective idle %s",
			s.History[1], s.History[1].Closed.Sub(s.History[1].Created), s.Learned, s.EffectiveIdle)
	}
}

// TestLaterSettingsLowerStreamLimit: a backend that lowers MAX_CONCURRENT_STREAMS after
// its first SETTINGS (from 16 to 2, when a connection's first stream arrives) is taken at
// its latest word: what the pool expects a connection to take (burst.go) follows it, and no
// stream goes beyond the lowered limit once acknowledged. The pool used to keep the value
// the connection settled with.
func TestLaterSettingsLowerStreamLimit(t *testing.T) {
	b := newBackend(t, testutil.RacyH2Options{MaxConcurrentStreams: 16, LowerMaxStreams: 2, Delay: 20 * time.Millisecond, HeaderTableSize: -1})
	p := newPool(t, b.Addr(), testOptions())
	if _, err := do(p, "http", "warm", false); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 5*time.Second, "the pool to take the lowered limit", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.perConnLocked() == 2
	})
	var wg sync.WaitGroup
	for i := range 12 {
		wg.Go(func() {
			if _, err := do(p, "http", fmt.Sprint(i), i%2 == 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := b.OverLimit.Load(); n != 0 {
		t.Errorf("%d streams opened beyond the acknowledged limit", n)
	}
}
