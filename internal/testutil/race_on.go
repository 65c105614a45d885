//go:build race

package testutil

// RaceEnabled reports whether the race detector is on: it allocates on its own, and sync.Pool
// drops items at random under it, so allocation counts mean nothing then.
const RaceEnabled = true
