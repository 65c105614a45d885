package ratelimit

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Algorithm says how a [Rule] counts requests.
type Algorithm uint8

// Algorithms. Their names are the config's values (see [ParseAlgorithm]).
const (
	// SlidingWindow counts requests in the current fixed window and weighs the previous
	// window's count by the part of it that the sliding window still covers (a two-window
	// weighted counter; doc.go gives its error bound).
	SlidingWindow Algorithm = iota
	// FixedWindow counts requests in windows aligned to the Unix epoch; exact per window,
	// but a client can send Limit at the end of one window and Limit at the start of the next.
	FixedWindow
	// GCRA is a token bucket (the generic cell rate algorithm): one request per
	// Window/Limit, and Burst more at once after an idle time.
	GCRA
)

var algorithmNames = [...]string{SlidingWindow: "sliding_window", FixedWindow: "fixed_window", GCRA: "gcra"}

func (a Algorithm) String() string {
	if int(a) < len(algorithmNames) {
		return algorithmNames[a]
	}
	return fmt.Sprintf("algorithm(%d)", a)
}

// ParseAlgorithm returns the Algorithm named s ("sliding_window", "fixed_window", "gcra";
// "token_bucket" is another name for "gcra").
func ParseAlgorithm(s string) (Algorithm, error) {
	for i, n := range algorithmNames {
		if n == s {
			return Algorithm(i), nil
		}
	}
	if s == "token_bucket" {
		return GCRA, nil
	}
	return 0, fmt.Errorf("unknown algorithm %q (want sliding_window, fixed_window or gcra)", s)
}

// Rule is one limit: Limit requests per Window, counted by Algorithm.
type Rule struct {
	Algorithm Algorithm
	// Limit is the number of requests per Window (> 0).
	Limit int64
	// Window is the period Limit applies to (>= 1ms).
	Window time.Duration
	// Burst (GCRA only) is how many requests above the steady rate are admitted at once
	// after an idle time, as nginx's limit_req burst: 0 spaces requests strictly
	// Window/Limit apart; the bucket holds Burst+1.
	Burst int64
}

// Validate reports what is wrong with r.
func (r Rule) Validate() error {
	var errs []error
	if r.Limit <= 0 {
		errs = append(errs, fmt.Errorf("limit must be at least 1, got %d", r.Limit))
	}
	if r.Window < time.Millisecond {
		errs = append(errs, fmt.Errorf("window must be at least 1ms, got %s", r.Window))
	}
	if r.Burst < 0 {
		errs = append(errs, fmt.Errorf("burst must not be negative, got %d", r.Burst))
	}
	if r.Burst > 0 && r.Algorithm != GCRA {
		errs = append(errs, fmt.Errorf("burst applies to the gcra algorithm only, not %s", r.Algorithm))
	}
	if r.Limit > 0 && r.Window >= time.Millisecond && r.Window/time.Duration(r.Limit) < time.Microsecond && r.Algorithm == GCRA {
		errs = append(errs, fmt.Errorf("gcra needs at least 1µs between requests (limit %d per %s is too fast)", r.Limit, r.Window))
	}
	return errors.Join(errs...)
}

// Quota is the number of requests a fresh key may send at once: Limit for the windows,
// Burst+1 for GCRA. It is the RateLimit-Limit header's value.
func (r Rule) Quota() int64 {
	if r.Algorithm == GCRA {
		return r.Burst + 1
	}
	return r.Limit
}

// Decision is the outcome of one request against one rule.
type Decision struct {
	// Allowed: the request was admitted (and counted).
	Allowed bool
	// Degraded: the decision came from the failure policy, not from the counter (the
	// shared store failed or was skipped); Allowed then says fail-open or fail-closed.
	Degraded bool
	// Limit is the rule's quota ([Rule.Quota]).
	Limit int64
	// Remaining is how many more requests would be admitted now.
	Remaining int64
	// Reset is the time until the quota is whole again (GCRA: the bucket is full) or,
	// for the windows, until the current window ends.
	Reset time.Duration
	// RetryAfter (refused requests) is the time until a request would be admitted.
	RetryAfter time.Duration
}

// decide applies r to c at now (unix ns) and updates c when the request is admitted.
func (r *Rule) decide(c *cell, now int64) Decision {
	if r.Algorithm == GCRA {
		return r.gcra(c, now)
	}
	return r.window(c, now)
}

// gcra: c.a is the theoretical arrival time (TAT) of the next request at the steady rate.
// A request at now is admitted iff max(TAT, now) - now <= Burst*T (T = Window/Limit); it
// moves TAT to max(TAT, now) + T.
func (r *Rule) gcra(c *cell, now int64) Decision {
	t := int64(r.Window) / r.Limit
	tau := r.Burst * t
	tat := max(c.a, now)
	d := Decision{Limit: r.Burst + 1}
	if allowAt := tat - tau; now < allowAt {
		d.Reset = time.Duration(tat - now)
		d.RetryAfter = time.Duration(allowAt - now)
		return d
	}
	c.a = tat + t
	d.Allowed = true
	d.Remaining = (now + tau - tat) / t
	d.Reset = time.Duration(c.a - now)
	return d
}

// window: c.a is the current window's index (now / Window), c.b its count, c.c the previous
// window's count. Sliding: the estimate is b + c*(1-f), f the elapsed part of the current
// window; a request is admitted iff estimate+1 <= Limit. Fixed: the same with c = 0.
func (r *Rule) window(c *cell, now int64) Decision {
	w := int64(r.Window)
	idx := now / w
	if idx != c.a {
		if idx == c.a+1 {
			c.c = c.b
		} else {
			c.c = 0
		}
		c.a, c.b = idx, 0
	}
	elapsed := now - idx*w
	prev := 0.0
	if r.Algorithm == SlidingWindow && c.c > 0 {
		prev = float64(c.c) * float64(w-elapsed) / float64(w)
	}
	d := Decision{Limit: r.Limit, Reset: time.Duration(w - elapsed)}
	if float64(c.b)+prev+1 > float64(r.Limit) {
		d.RetryAfter = r.windowWait(c, w, elapsed)
		return d
	}
	c.b++
	d.Allowed = true
	d.Remaining = int64(math.Floor(float64(r.Limit) - float64(c.b) - prev))
	d.Remaining = max(d.Remaining, 0)
	return d
}

// windowWait returns how long a refused request must wait before one is admitted.
func (r *Rule) windowWait(c *cell, w, elapsed int64) time.Duration {
	lim := float64(r.Limit)
	if r.Algorithm == FixedWindow || c.b+1 > r.Limit {
		// Wait for the next window; there the current count becomes the previous one and
		// must decay until b*(1-g) + 1 <= Limit.
		wait := w - elapsed
		if r.Algorithm == SlidingWindow && c.b > 0 {
			g := 1 - (lim-1)/float64(c.b)
			wait += int64(math.Ceil(max(g, 0) * float64(w)))
		}
		return time.Duration(wait)
	}
	// The previous window's weight must decay until c*(1-f) <= Limit - b - 1.
	f := 1 - (lim-float64(c.b)-1)/float64(c.c)
	return time.Duration(max(int64(math.Ceil(f*float64(w)))-elapsed, 1))
}

// idleRate reports whether a rate cell limits nothing any more at now.
func (r *Rule) idle(c *cell, now int64) bool {
	if r.Algorithm == GCRA {
		return c.a <= now
	}
	return now/int64(r.Window) > c.a+1 || (c.b == 0 && c.c == 0)
}
