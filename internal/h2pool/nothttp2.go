package h2pool

// A write failure on a connection whose peer sent no SETTINGS yet waits for the read loop's
// verdict before it fails any stream.
//
// An h2c target that is an HTTP/1.1 server answers the preface with a status line (400,
// 505, or 200 with Connection: close) and closes; with the client's frames unread, its
// kernel sends a reset. The status line arrived before the reset and stays readable (on
// Linux the read after it fails), so the read loop finds "HTTP/" and fails the streams with
// ErrNotHTTP2: nothing was processed, and the proxy sends them to another target. But a
// write (HEADERS, DATA, the read loop's own GOAWAY) that met the reset first closed the
// connection at once with its error, and its streams failed as reset, not to be re-sent
// when not idempotent (8 of 80 subtests in 40 runs of a gRPC test, once not retried on the
// working target beside it; design.md). So such a write leaves the close to the read loop (closeAfterRead),
// which ends promptly on the failed socket, and a stream whose own HEADERS write failed
// takes its verdict too (notHTTP2Err, asked by roundTrip: not under wmu, which the read
// loop's GOAWAY takes). A bare reset is no proof: the streams fail as before. A settled
// connection (an HTTP/2 server) or a write stopped by a deadline (cc.cut: the socket did
// not fail) closes at once, as before; streams on settled connections do nothing new.

import (
	"context"
	"fmt"
	"time"
)

// readVerdictWait bounds the wait for the read loop after a write failed on an unsettled
// connection: the read side of a failed socket ends within a read (microseconds on
// loopback); past this the connection is closed, which ends it.
const readVerdictWait = time.Second

// closeAfterRead closes the connection with err once its read loop ended, or
// readVerdictWait passed (closeWith then ends the read loop); a read loop that ended first
// failed the streams with its own verdict, and closeWith does nothing.
func (cc *clientConn) closeAfterRead(err error) {
	cc.awaitRead(nil)
	cc.closeWith(err)
}

// awaitRead waits for the read loop to end, at most readVerdictWait, or until stop is
// closed (nil: never).
func (cc *clientConn) awaitRead(stop <-chan struct{}) {
	t := time.NewTimer(readVerdictWait)
	defer t.Stop()
	select {
	case <-cc.readDone:
	case <-t.C:
	case <-stop:
	}
}

// notHTTP2Err waits for the read loop's verdict (awaitRead) on a connection whose write
// failed before the peer's SETTINGS came, and returns ErrNotHTTP2 with werr when it read an
// HTTP/1.x answer, nil otherwise. The wait ends with ctx, the request's: a client gone or
// an attempt timed out has no use for the verdict (the caller judges by the context first),
// and waited up to readVerdictWait for it before.
func (cc *clientConn) notHTTP2Err(ctx context.Context, werr error) error {
	cc.awaitRead(ctx.Done())
	cc.mu.Lock()
	no := cc.notHTTP2
	cc.mu.Unlock()
	if !no {
		return nil
	}
	return fmt.Errorf("%w (its write failed: %w)", ErrNotHTTP2, werr)
}
