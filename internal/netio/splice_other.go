//go:build !linux

package netio

// SpliceSupported: splice(2) exists only on Linux; bodies are copied here.
const SpliceSupported = false

// Splice never starts here.
func Splice(dst, src *Conn, n int64, beforeRead, beforeWrite func()) (s Spliced, started bool) {
	return s, false
}
