// Package health decides whether upstream targets get traffic, in two ways.
//
// Active checks ([Active]) probe every target on a timer, over a fresh connection (HTTP/1.1
// GET or TCP connect; never the data-path pool): unhealthy_threshold failures in a row mark a
// target unhealthy, healthy_threshold successes in a row mark it healthy again. Probes start
// at a random point within the first jitter × interval and each interval varies by ±jitter,
// so many gateways (and many targets) do not probe in lock-step. There is one goroutine per
// target; all of them end when the context given to [Active.Run] is canceled, which the
// gateway does when the generation that started them retires.
//
// Passive checks ([Passive]) are outlier ejection from real traffic: consecutive failed
// attempts (connect failures, resets, timeouts, gateway 5xx, and backend 5xx when count_5xx
// is on) eject a target for base_ejection × (number of recent ejections), capped at
// max_ejection. An ejection ends when its time is up (noticed by the next pick, no timer) or
// earlier when an active check sees the target healthy.
//
// The state itself lives on upstream.Target (see upstream.Target.Health), so that balancers
// read it with atomic loads and the admin API can show it.
package health
