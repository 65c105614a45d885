package reason

// Reason codes of the rate-limit and limit-conn plugins (internal/plugin/ratelimit,
// internal/plugin/limitconn). docs/errors.md lists each with advice.
const (
	// RateLimited: the request's key has used its allowance (429, with Retry-After).
	RateLimited Code = "rate_limited"
	// ConcurrencyLimited: the request's key has its maximum of requests in flight (429).
	ConcurrencyLimited Code = "concurrency_limited"
	// RateLimitUnavailable: a Redis-backed limit could not be checked and fails closed (503).
	RateLimitUnavailable Code = "rate_limit_unavailable"
)

func init() {
	for c, d := range map[Code]string{
		RateLimited:          "too many requests: the rate limit is reached; retry after the time in Retry-After",
		ConcurrencyLimited:   "too many requests in flight for this client; retry when one has finished",
		RateLimitUnavailable: "the rate limit could not be checked (its shared store is unavailable) and the limit fails closed",
	} {
		descriptions[c] = d
	}
}
