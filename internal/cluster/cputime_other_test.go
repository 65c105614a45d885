//go:build !unix

package cluster_test

// cpuTime is not available here; benchmarks then report wall time only.
func cpuTime() (int64, bool) { return 0, false }
