package discovery

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"sluice/internal/testutil"
	"sluice/internal/upstream"
)

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Count(l.b.String(), s)
}

// TestFailureIsAStandingWarning: a name that keeps failing is retried every min_ttl (here
// 20 ms) but warned about once, not at every retry (it was a WARN per second with the
// default min_ttl); when it resolves again that is said once.
func TestFailureIsAStandingWarning(t *testing.T) {
	srv := newServer(t)
	var logs lockedBuffer
	w := &Watcher{
		Resolver: &Resolver{Client: &Client{Server: srv.Addr, Timeout: 200 * time.Millisecond},
			MinTTL: 20 * time.Millisecond, MaxTTL: 20 * time.Millisecond, HostsFile: "-"},
		Name: Name{Host: "gone.test", Port: 80}, Upstream: "u",
		Apply: func([]upstream.Endpoint) ([]string, []string, error) { return nil, nil, nil },
		Log:   slog.New(slog.NewTextHandler(&logs, nil)),
	}
	eps, next := w.Resolve(context.Background())
	if eps != nil {
		t.Fatalf("resolved %v, want a failure", eps)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { w.Run(ctx, eps, next); close(done) }()
	defer func() { cancel(); <-done }()
	testutil.WaitFor(t, 5*time.Second, "10 retries", func() bool { return srv.Queries("gone.test", dnsmessage.TypeA) >= 10 })
	if n := logs.count("level=WARN"); n != 1 {
		t.Errorf("%d warnings for 10 failed resolutions within a second, want 1:\n%s", n, logs.b.String())
	}
	srv.SetA("gone.test", 1, "10.0.0.9")
	testutil.WaitFor(t, 5*time.Second, "the recovery line", func() bool { return logs.count("name resolves again") == 1 })
	q := srv.Queries("gone.test", dnsmessage.TypeA)
	testutil.WaitFor(t, 5*time.Second, "more resolutions", func() bool { return srv.Queries("gone.test", dnsmessage.TypeA) >= q+3 })
	if n := logs.count("name resolves again"); n != 1 {
		t.Errorf("recovery said %d times, want once", n)
	}
}
