package reason

import (
	"context"
	"errors"
	"net"
)

// DialTimedOut reports whether a dial (TCP, or a TLS handshake) with ctx failed with err
// because time ran out: the dial's own deadline (the connect timeout), or ctx ended by a
// cause that is a timeout (errors.Is context.DeadlineExceeded, or a [net.Error] whose
// Timeout is true). The second is how an attempt's deadline reaches a dial when the attempt
// ends its context with context.WithCancelCause (the HTTP/2 try timeout, a grpc-timeout): the
// dial itself then fails as canceled, not as timed out, which made such a cut dial
// upstream_connect_refused. A dial that ctx's plain cancel cut (the request went away) did
// not time out. The pools map a timed-out dial to upstream_connect_timeout (TCP) or a 504
// upstream_tls_handshake.
func DialTimedOut(ctx context.Context, err error) bool {
	if isTimeout(err) {
		return true
	}
	return ctx.Err() != nil && isTimeout(context.Cause(ctx))
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}
