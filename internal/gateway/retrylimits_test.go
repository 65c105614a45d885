package gateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"sluice/internal/testutil"
)

// TestRetryDeadline: a failure that the policy would retry is not retried once the route's
// retry.deadline has passed. The backend answers a request id's first attempt after 400 ms,
// later ones at once; per_try_timeout is 150 ms. Without a deadline the first try times out and
// the retry succeeds. With a 100 ms deadline the first try's wait is cut to the deadline and
// no attempt follows: 504 upstream_timeout, run once.
func TestRetryDeadline(t *testing.T) {
	be := testutil.NewFaultBackend(t, func(req *http.Request, n int) testutil.Fault {
		if n == 1 {
			return testutil.Fault{Delay: 400 * time.Millisecond}
		}
		return testutil.Fault{}
	})
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - id: up
    targets: [{address: {{b}}}]
    retry: {on: [timeout], per_try_timeout: 150ms, backoff_base: 1ms, backoff_max: 5ms}
routes:
  - id: deadline
    match: {path_prefix: /deadline/}
    upstream: up
    retry: {deadline: 100ms}
  - id: default
    upstream: up
`, map[string]string{"b": be.Addr()})
	cases := []struct {
		name    string
		path    string
		status  int
		reason  string
		started int
	}{
		{name: "timeout without a deadline is retried", path: "/slow", status: 200, started: 2},
		{name: "timeout at the deadline is not retried", path: "/deadline/slow", status: 504, reason: "upstream_timeout", started: 1},
	}
	c := newClient()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id := fmt.Sprintf("deadline-%d", i)
			resp := sendWithID(t, c, "GET", tg.url(tc.path), nil, id, false)
			wantAnswer(t, resp, tc.status, tc.reason)
			if n := be.Started(id); n != tc.started {
				t.Errorf("backend started the request %d times, want %d", n, tc.started)
			}
			l := tg.accessLines(i + 1)[i]
			if tries, _ := l["tries"].([]any); len(tries) != tc.started {
				t.Errorf("tries %v, want %d", l["tries"], tc.started)
			}
		})
	}
}

// TestNoAttemptAfterTheDeadline: "no attempt starts after [retry.deadline] since the request
// arrived" (docs/retries.md). Here the first try is reset after the backend read the head (a
// GET: retried), and the backoff (base and max 1000 h: full jitter draws below the 100 ms left with
// odds of 3e-8, where 10 s failed one run in a hundred) is longer than what is left of the
// deadline, so the deadline passes during the backoff: no second attempt may start, and the
// client gets the first try's failure.
//
// It failed before the fix: the backoff was cut at the deadline, but the attempt after it still
// started, at the deadline, with a 1 ms wait for its response (tryTimeout's floor), sent the
// request a second time and answered 504 upstream_timeout.
func TestNoAttemptAfterTheDeadline(t *testing.T) {
	be := testutil.NewFaultBackend(t, func(req *http.Request, n int) testutil.Fault {
		if n == 1 {
			return testutil.Fault{Reset: true}
		}
		return testutil.Fault{Delay: 5 * time.Millisecond}
	})
	tg := upstreamGateway(t, be.Addr(), "retry: {deadline: 100ms, backoff_base: 1000h, backoff_max: 1000h}")
	resp := sendWithID(t, newClient(), "GET", tg.url("/x"), nil, "late", false)
	wantAnswer(t, resp, 502, "upstream_reset_before_response") // the first try's failure
	if n := be.Started("late"); n != 1 {
		t.Errorf("backend started the request %d times, want 1 (no attempt after the deadline)", n)
	}
	if l := tg.accessLines(1)[0]; l["attempts"] != float64(1) {
		t.Errorf("access log: %v attempts (tries %v), want 1", l["attempts"], l["tries"])
	}
}

// TestRetryConcurrencyLimit: with limits.max_concurrent_retries 1, a request whose retry is in
// flight holds the upstream's only retry slot; another request that needs a retry meanwhile
// is answered 503 retry_limit_reached after its first try (run once), with the original
// failure in the access log. Once the slot is given back, retries run again.
func TestRetryConcurrencyLimit(t *testing.T) {
	release := make(chan struct{})
	be := testutil.NewFaultBackend(t, func(req *http.Request, n int) testutil.Fault {
		switch {
		case n == 1:
			return testutil.Fault{Reset: true} // every request's first try fails
		case req.URL.Path == "/hold":
			return testutil.Fault{Wait: release}
		}
		return testutil.Fault{}
	})
	tg := upstreamGateway(t, be.Addr(), "retry: {backoff_base: 1ms, backoff_max: 5ms}", "limits: {max_concurrent_retries: 1}")
	u := tg.gw.Current().Upstreams["b"]
	c := newClient()

	held := make(chan *http.Response, 1)
	go func() { held <- sendWithID(t, c, "GET", tg.url("/hold"), nil, "holder", false) }()
	testutil.WaitFor(t, 3*time.Second, "the retry to hold the slot", func() bool {
		_, retries := u.Active()
		return be.Started("holder") == 2 && retries == 1
	})

	resp := sendWithID(t, c, "GET", tg.url("/reset"), nil, "refused", false)
	if resp.StatusCode != 503 || resp.Header.Get("X-Sluice-Error") != "retry_limit_reached" || resp.Header.Get("Retry-After") != "1" {
		t.Errorf("while the slot is held: %d %q (Retry-After %q), want 503 retry_limit_reached (Retry-After 1)",
			resp.StatusCode, resp.Header.Get("X-Sluice-Error"), resp.Header.Get("Retry-After"))
	}
	if n := be.Started("refused"); n != 1 {
		t.Errorf("refused request started %d times, want 1", n)
	}

	close(release)
	if resp := <-held; resp.StatusCode != 200 || be.Started("holder") != 2 {
		t.Errorf("holder: %d, started %d times; want 200 after one retry", resp.StatusCode, be.Started("holder"))
	}
	testutil.WaitFor(t, 3*time.Second, "the retry slot released", func() bool { _, retries := u.Active(); return retries == 0 })
	if resp := sendWithID(t, c, "GET", tg.url("/reset"), nil, "after", false); resp.StatusCode != 200 || be.Started("after") != 2 {
		t.Errorf("after the slot was given back: %d, started %d times; want 200 after one retry", resp.StatusCode, be.Started("after"))
	}

	for _, l := range tg.accessLines(3) {
		if l["request_id"] != "refused" {
			continue
		}
		if cause, _ := l["error"].(string); l["reason"] != "retry_limit_reached" || !strings.Contains(cause, "upstream_reset_before_response") {
			t.Errorf("access log reason %v, error %q: want retry_limit_reached with the original reset", l["reason"], cause)
		}
	}
}
