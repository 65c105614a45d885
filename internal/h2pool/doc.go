// Package h2pool keeps the HTTP/2 connections (h2 over TLS, h2c) to one upstream target and
// runs streams on them, keeping Sluice's promise in HTTP/2's terms: a request the backend
// provably did not process is reported as such ([ErrUnprocessed]) so that the proxy sends
// it again, whatever its method, and a connection that may be dead is checked before a
// stream goes on it.
//
// # Codec
//
// The frames, flow control and stream state are the pool's own client connection
// (client.go, clientread.go, clientstream.go; issue #16), with x/net's Framer for reading
// frames and its hpack package for header compression. It replaced x/net's
// http2.ClientConn, which ran a goroutine per request, encoded through http.Header and
// flushed HEADERS and DATA separately (docs/design.md "An own HTTP/2 client connection").
// It honours the peer's SETTINGS: MAX_CONCURRENT_STREAMS (ReserveNewRequest fails on a full
// connection, and the pool then uses or opens another, up to Options.MaxConns),
// HEADER_TABLE_SIZE (the encoder's dynamic table follows it), INITIAL_WINDOW_SIZE,
// MAX_FRAME_SIZE and MAX_HEADER_LIST_SIZE.
//
// # The facts, and how they are had
//
// The connection classifies a failed stream as unprocessed (ErrUnprocessed) when it was
// above a GOAWAY's last-stream-id, refused with REFUSED_STREAM, or could not start on the
// connection (closed, or a GOAWAY came, before its HEADERS were written). The attempt ends
// with it at once (the pool never re-sends), and the proxy's retry rules re-send it on
// another connection with the body it holds.
//
// The connection's read loop keeps, from the frames it handles, what the records need: the
// latest GOAWAY's code and last-stream-id, the REFUSED_STREAM and other resets, and when the
// backend closed the connection; the socket under it counts the reads that returned bytes,
// which the sweeper compares between sweeps for the read-idle PING. These feed the life
// records, close reasons and idle-timeout learning.
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
