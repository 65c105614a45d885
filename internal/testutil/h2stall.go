package testutil

import (
	"io"
	"net"
	"sync/atomic"

	"golang.org/x/net/http2"
)

// StallAfterHeaders serves c as an h2c backend connection that grants large windows, reads
// until a request's HEADERS (counted in n, when not nil), then reads nothing more until
// stop: the client's writes fill the sockets and block, as on a backend that stopped
// reading behind an upload.
func StallAfterHeaders(c net.Conn, stop <-chan struct{}, n *atomic.Int64) {
	defer c.Close()
	pre := make([]byte, len(http2.ClientPreface))
	if _, err := io.ReadFull(c, pre); err != nil {
		return
	}
	fr := http2.NewFramer(c, c)
	fr.WriteSettings(http2.Setting{ID: http2.SettingInitialWindowSize, Val: 1<<31 - 1})
	fr.WriteWindowUpdate(0, 1<<31-1-65535)
	for {
		f, err := fr.ReadFrame()
		if err != nil {
			return
		}
		if s, ok := f.(*http2.SettingsFrame); ok && !s.IsAck() {
			fr.WriteSettingsAck()
		}
		if _, ok := f.(*http2.HeadersFrame); ok {
			if n != nil {
				n.Add(1)
			}
			break
		}
	}
	<-stop
}
