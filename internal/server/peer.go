package server

import "sluice/internal/netio"

// ClientGone reports whether the client has closed or reset its connection. It peeks at the
// socket without consuming anything, so bytes of a pipelined next request stay where they are.
func (ex *Exchange) ClientGone() bool {
	if ex.c.br.Buffered() > 0 || ex.c.nio == nil {
		return false
	}
	r, err := ex.c.nio.PeekNow()
	return err == nil && r == netio.PeekClosed
}

// Abort marks the response as broken after its head went out: the connection closes without
// completing the body, which is how HTTP/1.1 tells the client the response is incomplete.
func (ex *Exchange) Abort() {
	ex.aborted = true
	ex.closeAfter = true
}
