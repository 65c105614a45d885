//go:build !unix

package router

// cpuTime is not available here; benchmarks then report wall time only.
func cpuTime() (int64, bool) { return 0, false }
