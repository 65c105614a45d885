//go:build race

package router

// raceEnabled: under the race detector sync.Pool drops items at random (regexp keeps its
// matchers in one), so allocation counts are not stable.
const raceEnabled = true
