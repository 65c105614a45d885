//go:build !linux

package testutil

import "net"

// abort resets c (RST): SO_LINGER 0 and Close (see abort_linux.go for the faster way).
func abort(c net.Conn) { reset(c) }
