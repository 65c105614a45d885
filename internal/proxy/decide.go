package proxy

import "sluice/internal/config"

// The retry decision is a pure function of what provably happened on a failed attempt and
// what the request and its route allow (attemptFacts → decision), so that every rule can be
// read in one place and tested row by row (decide_test.go). The retrier gathers the facts,
// acts on the verdict, and owns what has side effects: budget tokens, retry slots, logging
// and backoff.
//
// The rules, in order:
//  1. Never after the request was canceled, after the response head went to the client, or
//     past maxAttempts.
//  2. A reused pooled connection that failed before any request byte was written means
//     the backend closed it while idle: the backend never saw the request, so it is sent
//     again at once, whatever the method and policy (not counted as a retry; at most
//     maxStaleResends times, the second time on a fresh connection), if its body is held.
//     An HTTP/2 stream the backend provably did not process (above a GOAWAY's
//     last-stream-id, REFUSED_STREAM) is re-sent the same way, on any connection.
//  3. Anything else is retried only when the route's retry.on lists its condition (and,
//     for a status, retry.statuses lists it), attempts remain, the request is safe to run
//     twice or provably was not sent, its body can be sent again, and the retry deadline
//     has not passed. After a failure on a reused connection, later attempts dial.

// action is what to do after a failed attempt.
type action uint8

const (
	actAnswer action = iota // answer the client with the attempt's error
	actResend               // send again at once, uncounted: the backend never saw the request
	actRetry                // try again, counted, if a budget token and a retry slot are had
)

// attemptFacts is everything the retry decision depends on.
type attemptFacts struct {
	cond         string // the retry condition the failure falls under (config.Retry*); "" when none
	status       int    // the response status, when cond is config.RetryStatus
	notSent      bool   // provably no request byte reached the backend
	unprocessed  bool   // an HTTP/2 stream the backend provably did not process
	reused       bool   // the attempt ran on a reused pooled connection
	canceled     bool   // the request's context ended (client gone, forced shutdown)
	headSent     bool   // the response head went to the client
	attempts     int    // attempts made, the failed one included
	tries        int    // attempts counted against retry.attempts
	resends      int    // free re-sends made before this failure
	safe         bool   // idempotent, keyed, or the route opted in to non-idempotent retries
	replayable   bool   // the whole request body is held (or there is none)
	pastDeadline bool   // retry.deadline has passed
}

// decision is decide's verdict.
type decision struct {
	action action
	fresh  bool   // later attempts dial new connections
	why    string // the condition retried on, for the log and metrics; "" when answering
}

// staleResend is the condition logged for a free re-send after a dead pooled connection.
const staleResend = "stale_connection"

// decide applies the retry rules (see the top of this file) to f under pol.
func decide(f attemptFacts, pol *retryPolicy) decision {
	if f.canceled || f.headSent || f.attempts >= maxAttempts {
		return decision{}
	}
	if (f.reused || f.unprocessed) && f.notSent && f.resends < maxStaleResends && f.replayable {
		return decision{action: actResend, fresh: f.resends+1 >= maxStaleResends, why: staleResend}
	}
	d := decision{fresh: f.reused}
	switch {
	case f.cond == "" || !pol.on[f.cond]:
	case f.cond == config.RetryStatus && !pol.retriesStatus(f.status):
	case f.tries >= pol.attempts:
	case !f.notSent && !f.safe:
	case !f.replayable:
	case f.pastDeadline:
	default:
		d.action, d.why = actRetry, f.cond
	}
	return d
}

// retriesStatus reports whether retry.statuses lists status.
func (pol *retryPolicy) retriesStatus(status int) bool {
	return status >= 500 && status <= 599 && pol.statuses[status-500]
}
