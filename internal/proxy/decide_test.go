package proxy

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"
	"testing"

	"sluice/internal/config"
	"sluice/internal/h1"
	"sluice/internal/reason"
)

// defaultPolicy is a route's retry policy with every default (config.defaultRetry).
func defaultPolicy(t *testing.T) *retryPolicy {
	t.Helper()
	var u config.Upstream
	pol := newRetryPolicy(config.Route{}.EffectiveRetry(u))
	return &pol
}

// TestDecide runs the retry rules row by row: what happened on a failed attempt and what the
// request allows → answer, re-send (free) or retry (counted), and on which connection. Go's
// TestTransportShouldRetryRequest is the model.
func TestDecide(t *testing.T) {
	// A failure of each kind, as classifySend/classifyRead/the pool report it.
	staleGET := attemptFacts{cond: config.RetryResetBeforeRequest, notSent: true, reused: true, attempts: 1, tries: 1, safe: true, replayable: true}
	stalePOST := staleGET
	stalePOST.safe = false
	sentPOST := attemptFacts{cond: config.RetryResetBeforeResponse, reused: true, attempts: 1, tries: 1, replayable: true}
	sentGET := sentPOST
	sentGET.safe = true
	refusedPOST := attemptFacts{cond: config.RetryConnectFailure, notSent: true, attempts: 1, tries: 1, replayable: true}
	with := func(f attemptFacts, edit func(*attemptFacts)) attemptFacts { edit(&f); return f }

	tests := []struct {
		name  string
		f     attemptFacts
		pol   func(*retryPolicy)
		want  action
		fresh bool
		why   string
	}{
		// Rule 2: a dead pooled connection costs the request nothing, whatever its method.
		{name: "POST on a pooled connection dead before any byte: free re-send", f: stalePOST, want: actResend, why: staleResend},
		{name: "GET on a pooled connection dead before any byte: free re-send", f: staleGET, want: actResend, why: staleResend},
		{name: "second free re-send dials", f: with(stalePOST, func(f *attemptFacts) { f.resends = 1 }), want: actResend, fresh: true, why: staleResend},
		{name: "free re-sends used up: a POST not sent is still retried by policy", f: with(stalePOST, func(f *attemptFacts) { f.resends = maxStaleResends }),
			want: actRetry, fresh: true, why: config.RetryResetBeforeRequest},
		{name: "free re-sends used up, policy lacks the condition", f: with(stalePOST, func(f *attemptFacts) { f.resends = maxStaleResends }),
			pol: func(p *retryPolicy) { delete(p.on, config.RetryResetBeforeRequest) }, want: actAnswer, fresh: true},
		{name: "free re-send needs the whole body held", f: with(stalePOST, func(f *attemptFacts) { f.replayable = false }), want: actAnswer, fresh: true},
		{name: "free re-send is not counted against retry.attempts", f: with(stalePOST, func(f *attemptFacts) { f.tries = 2 }), want: actResend, why: staleResend},
		{name: "a fresh connection reset before the request is no stale connection", f: with(stalePOST, func(f *attemptFacts) { f.reused = false }),
			want: actRetry, why: config.RetryResetBeforeRequest},

		// Rule 2 in HTTP/2 terms: a stream above a GOAWAY's last-stream-id or refused, on any
		// connection, new or reused.
		{name: "HTTP/2 POST stream not processed (GOAWAY, REFUSED_STREAM): free re-send", f: with(stalePOST, func(f *attemptFacts) { f.reused, f.unprocessed = false, true }),
			want: actResend, why: staleResend},
		{name: "HTTP/2 unprocessed, second re-send dials", f: with(stalePOST, func(f *attemptFacts) { f.reused, f.unprocessed, f.resends = false, true, 1 }),
			want: actResend, fresh: true, why: staleResend},

		// Rule 3: anything the backend may have processed.
		{name: "POST reset after being sent: never retried", f: sentPOST, want: actAnswer, fresh: true},
		{name: "POST reset after being sent, route opted in", f: with(sentPOST, func(f *attemptFacts) { f.safe = true }), want: actRetry, fresh: true, why: config.RetryResetBeforeResponse},
		{name: "GET reset after being sent: retried", f: sentGET, want: actRetry, fresh: true, why: config.RetryResetBeforeResponse},
		{name: "GET reset after being sent on a fresh connection: retried, may reuse", f: with(sentGET, func(f *attemptFacts) { f.reused = false }),
			want: actRetry, why: config.RetryResetBeforeResponse},
		{name: "GET timeout: not in retry.on by default", f: with(sentGET, func(f *attemptFacts) { f.cond = config.RetryTimeout }), want: actAnswer, fresh: true},
		{name: "GET timeout, route retries on timeout", f: with(sentGET, func(f *attemptFacts) { f.cond = config.RetryTimeout }),
			pol: func(p *retryPolicy) { p.on[config.RetryTimeout] = true }, want: actRetry, fresh: true, why: config.RetryTimeout},
		{name: "POST timeout, route retries on timeout: still not safe", f: with(sentPOST, func(f *attemptFacts) { f.cond = config.RetryTimeout }),
			pol: func(p *retryPolicy) { p.on[config.RetryTimeout] = true }, want: actAnswer, fresh: true},
		{name: "failure with no retry condition (bad response)", f: with(sentGET, func(f *attemptFacts) { f.cond = "" }), want: actAnswer, fresh: true},
		{name: "GET whose body is not all held", f: with(sentGET, func(f *attemptFacts) { f.replayable = false }), want: actAnswer, fresh: true},
		{name: "GET after retry.attempts tries", f: with(sentGET, func(f *attemptFacts) { f.tries = 2 }), want: actAnswer, fresh: true},
		{name: "GET with attempts left under a larger policy", f: with(sentGET, func(f *attemptFacts) { f.tries = 2 }),
			pol: func(p *retryPolicy) { p.attempts = 3 }, want: actRetry, fresh: true, why: config.RetryResetBeforeResponse},
		{name: "GET past retry.deadline", f: with(sentGET, func(f *attemptFacts) { f.pastDeadline = true }), want: actAnswer, fresh: true},
		{name: "POST refused at connect: never sent, retried", f: refusedPOST, want: actRetry, why: config.RetryConnectFailure},
		{name: "POST refused at connect, policy without connect_failure", f: refusedPOST,
			pol: func(p *retryPolicy) { delete(p.on, config.RetryConnectFailure) }, want: actAnswer},

		// Statuses.
		{name: "GET answered 503, status retries on", f: attemptFacts{cond: config.RetryStatus, status: 503, attempts: 1, tries: 1, safe: true, replayable: true},
			pol: func(p *retryPolicy) { p.on[config.RetryStatus] = true }, want: actRetry, why: config.RetryStatus},
		{name: "GET answered 503, status retries off (default)", f: attemptFacts{cond: config.RetryStatus, status: 503, attempts: 1, tries: 1, safe: true, replayable: true},
			want: actAnswer},
		{name: "GET answered 500, not in retry.statuses", f: attemptFacts{cond: config.RetryStatus, status: 500, attempts: 1, tries: 1, safe: true, replayable: true},
			pol: func(p *retryPolicy) { p.on[config.RetryStatus] = true }, want: actAnswer},
		{name: "POST answered 503: processed, not safe", f: attemptFacts{cond: config.RetryStatus, status: 503, attempts: 1, tries: 1, replayable: true},
			pol: func(p *retryPolicy) { p.on[config.RetryStatus] = true }, want: actAnswer},

		// Rule 1: never.
		{name: "response head already sent to the client", f: with(staleGET, func(f *attemptFacts) { f.headSent = true }), want: actAnswer},
		{name: "request canceled (client gone, forced shutdown)", f: with(staleGET, func(f *attemptFacts) { f.canceled = true }), want: actAnswer},
		{name: "maxAttempts reached", f: with(staleGET, func(f *attemptFacts) { f.attempts = maxAttempts }), want: actAnswer},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pol := defaultPolicy(t)
			if tc.pol != nil {
				tc.pol(pol)
			}
			got := decide(tc.f, pol)
			want := decision{action: tc.want, fresh: tc.fresh, why: tc.why}
			if got != want {
				t.Errorf("decide(%+v) = %+v, want %+v", tc.f, got, want)
			}
		})
	}
}

// TestClassify pins what a failed write or read proves about the request: only a failure
// before any byte was accepted is "not sent".
func TestClassify(t *testing.T) {
	reset := fmt.Errorf("write: %w", syscall.ECONNRESET)
	timeout := fmt.Errorf("read: %w", os.ErrDeadlineExceeded)
	bad := &h1.Error{Status: 502, Reason: "malformed status line"}
	alert := &net.OpError{Op: "remote error", Err: errors.New("tls: certificate required")}
	renegotiation := &net.OpError{Op: "local error", Err: errors.New("tls: no renegotiation")} // as crypto/tls reports a TLS 1.2 HelloRequest
	tests := []struct {
		name    string
		got     result
		code    reason.Code
		status  int
		cond    string
		notSent bool
	}{
		{name: "write reset before any byte", got: classifySend(reset, 0, "t"), code: reason.ResetBeforeSend, status: 502, cond: config.RetryResetBeforeRequest, notSent: true},
		{name: "write reset after some bytes", got: classifySend(reset, 1, "t"), code: reason.ResetBeforeResp, status: 502, cond: config.RetryResetBeforeResponse},
		{name: "write reset after the head, in the body", got: classifySend(syscall.EPIPE, 70000, "t"), code: reason.ResetBeforeResp, status: 502, cond: config.RetryResetBeforeResponse},
		{name: "write timeout", got: classifySend(timeout, 0, "t"), code: reason.ResponseTimeout, status: 504, cond: config.RetryTimeout},
		{name: "read reset before any response byte", got: classifyRead(io.ErrUnexpectedEOF, 0, "t"), code: reason.ResetBeforeResp, status: 502, cond: config.RetryResetBeforeResponse},
		{name: "read broke off inside the head", got: classifyRead(io.ErrUnexpectedEOF, 12, "t"), code: reason.BadResponse, status: 502},
		{name: "malformed head", got: classifyRead(bad, 40, "t"), code: reason.BadResponse, status: 502},
		{name: "read timeout", got: classifyRead(timeout, 0, "t"), code: reason.ResponseTimeout, status: 504, cond: config.RetryTimeout},
		{name: "TLS alert before any response byte", got: classifyRead(alert, 0, "t"), code: reason.TLSHandshake, status: 502, cond: config.RetryResetBeforeResponse},
		{name: "TLS alert inside the head", got: classifyRead(alert, 12, "t"), code: reason.BadResponse, status: 502},
		{name: "renegotiation refused before any response byte", got: classifyRead(renegotiation, 0, "t"), code: reason.TLSHandshake, status: 502, cond: config.RetryResetBeforeResponse},
		{name: "renegotiation refused inside the head", got: classifyRead(renegotiation, 12, "t"), code: reason.BadResponse, status: 502},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := tc.got
			if r.err == nil || r.err.Code != tc.code || r.err.Status != tc.status || r.cond != tc.cond || r.notSent != tc.notSent {
				t.Fatalf("got %+v (err %v), want %d %s cond %q notSent %v", r, r.err, tc.status, tc.code, tc.cond, tc.notSent)
			}
			if r.err.Target != "t" {
				t.Errorf("target %q, want t", r.err.Target)
			}
		})
	}
}

// TestClientBodyFailure: a failure the downstream explains is answered as it is.
func TestClientBodyFailure(t *testing.T) {
	tooLarge := reason.New(413, reason.BodyTooLarge, "", errors.New("over the limit"))
	tests := []struct {
		name       string
		err        error
		code       reason.Code
		clientGone bool
	}{
		{name: "limit", err: fmt.Errorf("read body: %w", tooLarge), code: reason.BodyTooLarge},
		{name: "slow client", err: os.ErrDeadlineExceeded, code: reason.ClientTimeout},
		{name: "bad chunk", err: &h1.Error{Status: 400, Reason: "bad chunk size"}, code: reason.BadRequest},
		{name: "client reset", err: syscall.ECONNRESET, code: reason.ClientBodyError, clientGone: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := clientBodyFailure("t", tc.err)
			if r.err.Code != tc.code || r.clientGone != tc.clientGone || r.clientGone == r.clientSide {
				t.Errorf("got %+v (%v), want %s clientGone=%v", r, r.err, tc.code, tc.clientGone)
			}
		})
	}
}
