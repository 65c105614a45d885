// Package probe measures the keep-alive behaviour of an HTTP/1.1 backend, so that an
// operator can set a Sluice upstream's keepalive settings from facts instead of guesses:
// in the Higress incident behind Sluice, a pool idle timeout of 600s sat in front of a
// backend that closed idle connections after about 2s.
//
// [Probe] runs three phases over raw TCP connections, reading responses with the h1 codec:
//
//  1. Basic: two requests on one connection. The first response's Connection and
//     Keep-Alive headers are recorded; if the second request is answered the backend
//     keeps connections alive, and the other two phases run in parallel.
//
//  2. Request limit: up to MaxRequests sequential requests on one connection; the limit is
//     the count after which the backend said Connection: close or closed silently (the
//     next request got no response byte).
//
//  3. Idle timeout, in parallel connections rather than a sequential search:
//
//     Watchers connections are opened at once, plus a "ladder" of connections opened
//     50ms, 100ms, 200ms, ... after the start. Each makes one request, notes the instant
//     it finished reading the response (idle age 0), then blocks in a read with a
//     deadline; the backend's FIN (or RST, or an unsolicited 408) ends the read, and the
//     idle age at that moment is one sample. The first sample, T, is an upper bound of
//     the timeout and arrives after about T: no time is spent on guesses.
//
//     To confirm T from below, one connection sends a request at idle age T - max(T/10,
//     20ms); it must be answered. The ladder makes this cheap: when T is seen, some ladder
//     connection is younger than that age and is chosen, so the check ends by about 1.1T
//     (if none is, a fresh connection is opened). A failed check lowers the result to the
//     check age. Meanwhile the other watchers' closes arrive, bounding the jitter from
//     above; the phase waits for them at most max(T/5, 250ms) after the first. Connections
//     still open then are counted in OpenPastSlack.
//
//     If nothing closes within MaxWait, the backend keeps idle connections at least that
//     long, and the phase ends at MaxWait.
//
// The result is the shortest close age seen. Its error is the scheduling delay of the
// probe's own goroutines between the kernel receiving a response (or FIN) and the probe
// reading the clock, in either direction; on loopback it is well under 20ms even under
// the race detector, and the tests assert ±max(20%, 250ms). [Recommend] rounds the
// measurement to 10ms, takes safety_fraction of it and rounds down for readability.
//
// [CheckConfig] probes every target of a config's upstreams, a bounded number at a time,
// and flags an upstream whose keepalive.idle_timeout exceeds safety_fraction x the
// measured timeout of one of its targets.
package probe
