package config

import (
	"math"
	"slices"
	"strconv"
)

// Retry conditions, the values of retry.on.
const (
	RetryConnectFailure      = "connect_failure"
	RetryResetBeforeRequest  = "reset_before_request"
	RetryResetBeforeResponse = "reset_before_response"
	RetryTimeout             = "timeout"
	RetryStatus              = "status"
)

// Retry defaults.
var (
	DefaultRetryAttempts      = 2
	DefaultBackoffBase        = Duration(25e6)  // 25ms
	DefaultBackoffMax         = Duration(250e6) // 250ms
	DefaultRetryOn            = []string{RetryConnectFailure, RetryResetBeforeRequest, RetryResetBeforeResponse}
	DefaultRetryStatuses      = []int{502, 503, 504}
	DefaultIdempotencyHeader  = "Idempotency-Key"
	DefaultBudgetPercent      = 20.0
	DefaultBudgetMinPerSecond = 3.0
	DefaultBufferBody         = int64(64 << 10)
)

// MaxRetryAttempts is the largest retry.attempts allowed (the first try included). The proxy
// sizes its per-request attempt records by it.
const MaxRetryAttempts = 10

// maxBufferBody bounds retry.buffer_body: a buffered body is held in memory per request.
const maxBufferBody = 16 << 20

var retryConditions = []string{RetryConnectFailure, RetryResetBeforeRequest, RetryResetBeforeResponse, RetryTimeout, RetryStatus}

// defaultRetry fills an upstream's retry policy. Routes are not defaulted: their set fields
// override the upstream's (see Route.EffectiveRetry).
func defaultRetry(r *Retry) {
	setIfNil(&r.Attempts, DefaultRetryAttempts)
	setIfNil(&r.PerTryTimeout, 0)
	setIfNil(&r.Deadline, 0)
	setIfNil(&r.BackoffBase, DefaultBackoffBase)
	setIfNil(&r.BackoffMax, DefaultBackoffMax)
	if r.On == nil {
		r.On = slices.Clone(DefaultRetryOn)
	}
	if r.Statuses == nil {
		r.Statuses = slices.Clone(DefaultRetryStatuses)
	}
	setIfNil(&r.NonIdempotent, false)
	setIfNil(&r.IdempotencyHeader, DefaultIdempotencyHeader)
	setIfNil(&r.BudgetPercent, DefaultBudgetPercent)
	setIfNil(&r.BudgetMinPerSecond, DefaultBudgetMinPerSecond)
	setIfNil(&r.BufferBody, DefaultBufferBody)
}

// EffectiveRetry is the route's retry policy: the upstream's, with the fields the route sets.
func (r Route) EffectiveRetry(u Upstream) Retry {
	out := u.Retry
	defaultRetry(&out)
	o := r.Retry
	override(&out.Attempts, o.Attempts)
	override(&out.PerTryTimeout, o.PerTryTimeout)
	override(&out.Deadline, o.Deadline)
	override(&out.BackoffBase, o.BackoffBase)
	override(&out.BackoffMax, o.BackoffMax)
	override(&out.NonIdempotent, o.NonIdempotent)
	override(&out.IdempotencyHeader, o.IdempotencyHeader)
	override(&out.BudgetPercent, o.BudgetPercent)
	override(&out.BudgetMinPerSecond, o.BudgetMinPerSecond)
	override(&out.BufferBody, o.BufferBody)
	if o.On != nil {
		out.On = o.On
	}
	if o.Statuses != nil {
		out.Statuses = o.Statuses
	}
	return out
}

func override[T any](dst **T, src *T) {
	if src != nil {
		*dst = src
	}
}

func validateRetry(p *problems, b string, r Retry) {
	if r.Attempts != nil && (*r.Attempts < 1 || *r.Attempts > MaxRetryAttempts) {
		p.add(b+".attempts", "must be between 1 (no retries) and %d, got %d", MaxRetryAttempts, *r.Attempts)
	}
	for name, d := range map[string]*Duration{"per_try_timeout": r.PerTryTimeout, "deadline": r.Deadline} {
		if d != nil && *d < 0 {
			p.add(b+"."+name, "must not be negative (0 means none)")
		}
	}
	if r.BackoffBase != nil && *r.BackoffBase <= 0 {
		p.add(b+".backoff_base", "must be positive")
	}
	if r.BackoffMax != nil && r.BackoffBase != nil && *r.BackoffMax < *r.BackoffBase {
		p.add(b+".backoff_max", "must not be below backoff_base (%s)", *r.BackoffBase)
	}
	seen := map[string]bool{}
	for i, c := range r.On {
		if !slices.Contains(retryConditions, c) {
			p.add(indexed(b+".on", i), "unknown condition %q: want one of %v", c, retryConditions)
		} else if seen[c] {
			p.add(indexed(b+".on", i), "duplicate condition %q", c)
		}
		seen[c] = true
	}
	for i, s := range r.Statuses {
		if s < 500 || s > 599 {
			p.add(indexed(b+".statuses", i), "only 5xx statuses can be retried, got %d", s)
		}
	}
	if h := r.IdempotencyHeader; h != nil && *h != "" && !isToken(*h) {
		p.add(b+".idempotency_header", "%q is not a valid header name", *h)
	}
	if f := r.BudgetPercent; f != nil && (math.IsNaN(*f) || *f < 0 || *f > 1000) {
		p.add(b+".budget_percent", "must be between 0 and 1000, got %v", *f)
	}
	if f := r.BudgetMinPerSecond; f != nil && (math.IsNaN(*f) || *f < 0) {
		p.add(b+".budget_min_per_second", "must not be negative, got %v", *f)
	}
	if n := r.BufferBody; n != nil && (*n < 0 || *n > maxBufferBody) {
		p.add(b+".buffer_body", "must be between 0 and %d bytes, got %d", maxBufferBody, *n)
	}
}

func indexed(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}
