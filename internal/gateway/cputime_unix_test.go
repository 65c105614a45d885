//go:build unix

package gateway

import "syscall"

// cpuTime returns the user+system CPU time of the process in nanoseconds. Benchmarks
// report it per op because wall time is noisy on a shared machine.
func cpuTime() (int64, bool) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, false
	}
	return ru.Utime.Nano() + ru.Stime.Nano(), true
}
