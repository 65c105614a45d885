package plugin

// ClientGone reports whether the client has gone: it reset its connection, or its HTTP/2
// stream was reset (a half-closed HTTP/1.1 client is still answered). A finding cancels
// [Request.Context]. A filter that waits (a delay) polls it, as the proxy does while it
// waits for an upstream; it peeks at the socket, so call it at most every few milliseconds.
func (r *Request) ClientGone() bool { return r.ds.ClientGone() }
