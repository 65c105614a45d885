package server

import "sluice/internal/netio"

// ClientGone reports whether the client has closed or reset its connection (or the
// connection was closed here, by a forced shutdown). It peeks at the socket without consuming
// anything, so bytes of a pipelined next request stay where they are. A client found gone
// cancels the request's context.
func (ex *Exchange) ClientGone() bool {
	c := ex.c
	if c.ctx.Err() != nil {
		return true
	}
	if c.br.Buffered() > 0 || c.nio == nil {
		return false
	}
	// A failed peek means the socket is unusable: reset, or closed locally.
	if r, err := c.nio.PeekNow(); err == nil && r != netio.PeekClosed {
		return false
	}
	c.cancelRequest(errClientGone)
	return true
}

// Abort marks the response as broken after its head went out: the connection closes without
// completing the body, which is how HTTP/1.1 tells the client the response is incomplete.
func (ex *Exchange) Abort() {
	ex.aborted = true
	ex.closeAfter = true
}
