package server

// DuplexBody reports that the request body may be read on one goroutine while the response
// is written on another (proxy.DuplexBody): an HTTP/2 upstream's response then streams
// while the request body still flows, as gRPC bidirectional calls need.
func (s *Stream) DuplexBody() bool { return true }
