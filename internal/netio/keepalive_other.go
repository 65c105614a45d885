//go:build !linux

package netio

import (
	"net"
	"time"
)

// keepaliveInherited: elsewhere, Go sets keep-alive on each accepted connection.
const keepaliveInherited = false

// SetListenerKeepalive does nothing off Linux: [Listen] had Go set keep-alive per accepted
// connection, fixed when the listener was opened.
func SetListenerKeepalive(ln net.Listener, idle time.Duration) error { return nil }
