package server

// ClientGone reports whether the client has reset its connection (or the connection was
// closed here, by a forced shutdown). A FIN alone is not gone: a client may half-close its
// connection after the request and still read the response (RFC 9112 §9.6), so it is
// answered; one that closed for good learns of the answer from its kernel (a reset). It
// peeks at the socket without consuming anything, so bytes of a pipelined next request stay
// where they are. A client found gone cancels the request's context.
func (ex *Exchange) ClientGone() bool {
	c := ex.c
	if c.ctx.Err() != nil {
		return true
	}
	if c.br.Buffered() > 0 || c.nio == nil {
		return false
	}
	// A failed peek means the socket is unusable: closed locally.
	if reset, err := c.nio.PeekReset(); err == nil && !reset {
		return false
	}
	c.cancelRequest(errClientGone)
	return true
}

// Abort marks the response as broken after its head went out: the connection closes without
// completing the body, which is how HTTP/1.1 tells the client the response is incomplete.
// Before the head, nothing is sent: the connection closes (a client that is gone).
func (ex *Exchange) Abort() {
	ex.aborted = true
	ex.closeAfter = true
}
