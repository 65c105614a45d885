package connpool

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"sluice/internal/reason"
	"sluice/internal/testutil"
)

func TestMain(m *testing.M) {
	code := m.Run()
	if code == 0 {
		sweeper := func(g string) bool { return strings.Contains(g, "connpool.(*Pool).sweep(") }
		if s := testutil.Leaked(2*time.Second, sweeper); s != "" {
			fmt.Fprintf(os.Stderr, "leaked pool sweepers:\n%s\n", s)
			code = 1
		}
	}
	os.Exit(code)
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// newPool builds a pool with test-sized durations; mod adjusts the options.
func newPool(t *testing.T, addr string, mod func(*Options)) *Pool {
	t.Helper()
	o := Options{
		Enabled:       true,
		IdleTimeout:   10 * time.Second,
		MaxIdle:       8,
		MaxPending:    16,
		Learn:         true,
		UnsafeMaxIdle: time.Second,
		SweepInterval: 5 * time.Millisecond,
	}
	if mod != nil {
		mod(&o)
	}
	p := New(addr, o, testLogger(t))
	t.Cleanup(func() { p.Close(CloseShutdown) })
	return p
}

// attempt is what one exchange saw on its connection.
type attempt struct {
	reused  bool
	idle    time.Duration // the conn's idle age at checkout
	written int64
	read    int64
	err     error
}

// exchange sends one request through p the way the proxy does (Get, write, read, Release)
// and returns what it saw. The pool never retries.
func exchange(p *Pool, method, id string) attempt {
	return exchangeOn(p, method, id, false)
}

// exchangeOn is exchange on a newly dialed conn when fresh (GetFresh, as the proxy's retry
// after a failure on a reused conn).
func exchangeOn(p *Pool, method, id string, fresh bool) attempt {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var c *Conn
	var err error
	if fresh {
		c, err = p.GetFresh(ctx)
	} else {
		c, err = p.Get(ctx, method == http.MethodGet)
	}
	if err != nil {
		return attempt{err: err}
	}
	_ = c.NetConn().SetDeadline(time.Now().Add(5 * time.Second))
	req := method + " /x HTTP/1.1\r\nHost: t\r\nX-Request-Id: " + id + "\r\n"
	if method != http.MethodGet {
		req += "Content-Length: 0\r\n"
	}
	_, err = c.W.WriteString(req + "\r\n")
	if err == nil {
		err = c.W.Flush()
	}
	var resp *http.Response
	if err == nil {
		resp, err = http.ReadResponse(c.R, nil)
	}
	if err == nil {
		_, err = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	_ = c.NetConn().SetDeadline(time.Time{})
	out := Outcome{KeepAliveMax: -1, Err: err}
	if err == nil {
		out.Reusable = !resp.Close
		out.KeepAliveTimeout, out.KeepAliveMax = parseKeepAlive(resp.Header.Get("Keep-Alive"))
		if resp.Close {
			out.Reason = CloseBackendClose
		}
	}
	a := attempt{reused: c.Reused, idle: c.IdleAge, written: c.BytesWritten(), read: c.BytesRead(), err: err}
	p.Release(c, out)
	return a
}

// safeExchange emulates the proxy's retry rule: one retry when nothing was written, or,
// for GET only, when a reused connection failed before any response byte.
func safeExchange(p *Pool, method, id string) (first, final attempt) {
	first = exchange(p, method, id)
	if first.err == nil {
		return first, first
	}
	var re *reason.Error
	if errors.As(first.err, &re) {
		return first, first // the pool's own error: nothing was sent
	}
	if first.written == 0 || (method == http.MethodGet && first.reused && first.read == 0) {
		return first, exchange(p, method, id)
	}
	return first, first
}

func parseKeepAlive(v string) (time.Duration, int) {
	timeout, maxReq := time.Duration(0), -1
	for part := range strings.SplitSeq(v, ",") {
		k, val, _ := strings.Cut(strings.TrimSpace(part), "=")
		n, err := strconv.Atoi(strings.TrimSpace(val))
		if err != nil {
			continue
		}
		switch strings.ToLower(k) {
		case "timeout":
			timeout = time.Duration(n) * time.Second
		case "max":
			maxReq = n
		}
	}
	return timeout, maxReq
}

func mustOK(t *testing.T, a attempt) {
	t.Helper()
	if a.err != nil {
		t.Fatalf("exchange failed: %v", a.err)
	}
}
