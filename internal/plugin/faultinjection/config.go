package faultinjection

import "sluice/internal/config"

// Config is the fault-injection plugin's config: a delay, an abort, or both (the delay
// first, then the abort, each decided on its own).
type Config struct {
	// Delay holds a share of the requests for a while before they go on. Default none.
	Delay *Delay `yaml:"delay"`
	// Abort answers a share of the requests itself, without the upstream. Default none.
	Abort *Abort `yaml:"abort"`
	// Seed makes the choice of requests repeatable: with the same seed, the same numbered
	// requests (the plugin counts the requests it sees, from 0) are delayed or aborted, so
	// a test of N requests gets an exact count. Default 0: a random seed per config load.
	Seed uint64 `yaml:"seed"`
}

// Delay is the delay fault.
type Delay struct {
	// Duration is how long a chosen request waits (at most 1h; a client that leaves ends
	// the wait). Required.
	Duration config.Duration `yaml:"duration"`
	// Percentage is the share of requests delayed, 0 to 100 (fractions allowed, 0.5 is one
	// in two hundred). Default 100; 0 delays none.
	Percentage *float64 `yaml:"percentage"`
}

// Abort is the abort fault.
type Abort struct {
	// Status is the answer's status, 200 to 599 (a 503 or 500 for a chaos test). Required.
	Status int `yaml:"status"`
	// Body is the answer's body, sent as text/plain. Default: the gateway's JSON error body
	// with the reason fault_injected_abort.
	Body string `yaml:"body"`
	// Percentage is the share of requests aborted, 0 to 100. Default 100; 0 aborts none.
	Percentage *float64 `yaml:"percentage"`
}
