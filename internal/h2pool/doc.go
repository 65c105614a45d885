// Package h2pool keeps the HTTP/2 connections (h2 over TLS, h2c) to one upstream target and
// runs streams on them, keeping Sluice's promise in HTTP/2's terms: a request the backend
// provably did not process is reported as such ([ErrUnprocessed]) so that the proxy sends
// it again, whatever its method, and a connection that may be dead is checked before a
// stream goes on it.
//
// # Codec
//
// The frames, HPACK, flow control and stream state are golang.org/x/net/http2's client
// connection (http2.ClientConn); the pool owns the connections: it dials them (TCP, TLS with
// ALPN h2), hands each to http2.Transport.NewClientConn, and is the Transport's
// ClientConnPool, so that every stream goes on a connection it chose. The library honours
// the peer's SETTINGS: MAX_CONCURRENT_STREAMS (ReserveNewRequest fails on a full connection,
// and the pool then uses or opens another, up to Options.MaxConns), HEADER_TABLE_SIZE (the
// encoder's dynamic table follows it), INITIAL_WINDOW_SIZE and MAX_FRAME_SIZE.
//
// # The facts, and how they are had
//
// x/net classifies a failed stream as unprocessed (canRetryError) when it was above a
// GOAWAY's last-stream-id, refused with REFUSED_STREAM, or could not start on the
// connection; its sentinel errors for two of those are unexported. Rather than match error
// text, the pool lets the library act on its own classification and watches it do so: the
// Transport retries exactly those streams, and to retry it first asks the request for a new
// body (Request.GetBody, which the pool sets) or, with no body, asks the pool for another
// connection (GetClientConn a second time for the same request). Either call is proof that
// the stream was not processed; both end the attempt with ErrUnprocessed at once (no
// library backoff, no hidden re-send), and the proxy's retry rules re-send it on another
// connection with the body it holds.
//
// What the library does not report at all, a connection wrapper (sniff.go) reads from the
// frame headers the backend sends: a GOAWAY's code and last-stream-id, the REFUSED_STREAM
// and other resets, when a byte was last read and when the backend closed. These feed the
// life records, close reasons and idle-timeout learning.
//
// # Liveness
//
//   - Before a stream goes on a connection that carried none for Options.PingAfterIdle, the
//     pool PINGs it and waits up to PingTimeout; no answer retires it (ping_timeout) and the
//     request takes another connection. Nothing was sent, so this costs the request nothing.
//   - The sweeper (every SweepInterval) PINGs a connection that read nothing for
//     ReadIdleTimeout, closes connections whose streams ended after a GOAWAY, closes idle
//     ones past the effective idle timeout, and records those the backend closed.
//   - Learning: a GOAWAY or close that comes to a connection without streams is the
//     backend's idle timeout at work; the idle age it came at, times SafetyFraction, then
//     bounds how long connections stay idle, as connpool does for HTTP/1.1.
//
// # Limits
//
// A connection given Options.MaxRequests streams, or older than Options.MaxLifetime, takes
// no new streams, as after a GOAWAY; its streams finish and it is closed (max_requests,
// max_lifetime). A replacement dialed ahead waits as a spare, so that no request waits for
// a dial and the old connection carries exactly its limit (retire.go). A burst larger than
// the connections being dialed can take dials the others it needs at once, within
// Options.MaxConns (burst.go).
package h2pool
