package reason

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"syscall"
)

// DialFailure is the reason of a failed TCP dial to target with ctx, the same for the
// HTTP/1.1 and the HTTP/2 pools: 502 upstream_connect_refused when the target refused it
// (ECONNREFUSED), 504 upstream_connect_timeout when time ran out ([DialTimedOut]), else 502
// upstream_connect_failed (unreachable, reset, the request gone: not the target's fault).
func DialFailure(ctx context.Context, target string, err error) *Error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return New(502, ConnectRefused, target, err)
	case DialTimedOut(ctx, err):
		return New(504, ConnectTimeout, target, err)
	}
	return New(502, ConnectFailed, target, err)
}

// DialTimedOut reports whether a dial (TCP, or a TLS handshake) with ctx failed with err
// because time ran out: the dial's own deadline (the connect timeout), or ctx ended by a
// cause that is a timeout (errors.Is context.DeadlineExceeded, or a [net.Error] whose
// Timeout is true). The second is how an attempt's deadline reaches a dial when the attempt
// ends its context with context.WithCancelCause (the HTTP/2 try timeout, a grpc-timeout): the
// dial itself then fails as canceled, not as timed out, which made such a cut dial
// upstream_connect_refused. A dial that ctx's plain cancel cut (the request went away) did
// not time out.
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

// CertificateFailed reports whether err, a failed TLS client handshake, is the target's
// certificate failing verification (unknown authority, expired or not yet valid, not valid
// for the name verified): upstream_tls_certificate rather than upstream_tls_handshake, for
// the HTTP/1.1 and the HTTP/2 pools alike.
func CertificateFailed(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var hn x509.HostnameError
	var ci x509.CertificateInvalidError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &hn) || errors.As(err, &ci)
}
