// Package connpool keeps the upstream connections of one target (one [Pool] per target)
// and makes sure a request is never written on a pooled keep-alive connection that the
// backend is about to close or has closed. The HTTP/1.1 codec and the proxy live
// elsewhere: the proxy calls [Pool.Get], writes the request on [Conn.W], reads the
// response from [Conn.R] and calls [Pool.Release] with an [Outcome]. The pool never
// retries; [Conn.BytesWritten], [Conn.BytesRead] and [Conn.Reused] give the proxy what it
// needs to decide whether a retry is safe.
//
// # Layers
//
//  1. Idle deadline. Idle conns sit on a LIFO stack (most recently used on top, so the
//     coldest conns age out once traffic thins; while it comes often enough, a request takes
//     an unused preconnected conn, else the oldest conn past half its limit that it may use,
//     so the conns the traffic needs stay alive: refreshLocked in pool.go). A conn is never handed out when its idle age reaches the
//     effective idle timeout, its age reaches MaxLifetime, or it served MaxRequests or the
//     backend's Keep-Alive max. A sweeper goroutine (one per pool, only while there are
//     idle conns, gone after Close) retires such conns every SweepInterval.
//  2. Checkout check. Before reuse: bytes already buffered in R mean unsolicited data;
//     else a non-blocking recvfrom(MSG_PEEK|MSG_DONTWAIT) in RawConn.Control: 0 bytes is a
//     FIN, bytes are unsolicited data, EAGAIN is alive, any other error (ECONNRESET) is
//     dead. A dead conn is closed, counted as stale caught, fed to learning, and Get takes
//     the next idle conn or dials. Nothing was sent, so this costs the request nothing.
//     The sweeper runs the same probe on idle conns so backend closes are seen promptly.
//     Over TLS (Options.TLS) the check reads through the TLS connection without waiting
//     instead: a session ticket is consumed and keeps the conn, a close_notify or FIN means
//     dead, application data or part of a record means unsolicited data (tls.go explains why
//     a peek cannot judge TLS bytes, and how the sweeper reads them).
//  3. Non-idempotent requests (idempotent=false) cannot be replayed after an ambiguous
//     failure, so they only reuse a conn idle less than min(UnsafeMaxIdle, effective/4);
//     otherwise they get a fresh conn. With effective = 0.85*learned, a POST can only meet
//     an idle close if the backend's timeout was overestimated almost fivefold, which one
//     observation or failure corrects; and the peek check has just run. One reset on reuse
//     lowers this bound at once, as a learned value would, even while it is provisional. Once the pool is
//     confident of the backend's close age (observed closes agree, confidence.go), the bound
//     is close - margin - 2*race window instead, when that is higher. And for LearnWindow
//     after a conn was seen closed right after its response (below ReuseFloor: a backend that
//     never serves a second request on a conn, its FIN or close_notify a moment after the
//     response), they do not reuse a conn that has served only one request while it is idle
//     less than minMargin, by when such a close has arrived for the check to find
//     (afterresponse.go).
//  4. Preconnect (Options.Preconnect, preconnect.go): while traffic is recent, the sweeper
//     replaces an idle conn about to be retired in the background, so the next request does
//     not wait for a connect.
//
// # Effective idle timeout
//
//	effective = min(IdleTimeout, SafetyFraction*learned) * factor, and 0 (no reuse)
//	when below ReuseFloor (10ms); with confidence, close - margin replaces
//	SafetyFraction*learned (confidence.go).
//
// A conn's own latest "Keep-Alive: timeout" lowers its effective timeout further, unless
// observed closes proved that value conservative (confidence.go, "beyond the advertisement").
//
// # Learning the backend's idle timeout (Options.Learn)
//
//   - Header (source "header"): "Keep-Alive: timeout=N" below the learned value applies at
//     once. A higher N applies only after 3 responses in a row carried the same N, and
//     only over a header-learned value: a value from observation or failure is evidence
//     that the backend closes earlier than it says.
//   - Observation (source "observed"): when the sweep or the checkout check finds an idle
//     conn closed by the backend, the idle age at which it was last seen alive is a lower
//     bound of the backend's timeout (half the idle age at discovery if it was never seen
//     alive). Samples below ReuseFloor are ignored (a restart or crash, and too short to
//     honour anyway). Samples less than 2 sweep intervals apart form one event and keep
//     its minimum: a restart closes every conn at once. A sample is applied (learned =
//     min(learned, sample)) only when another event within LearnWindow agrees within 25%:
//     an idle timeout recurs at the same age, a restart does not. So a backend restart is
//     never learned as an idle timeout, and a real one is learned at its second close. An
//     event no longer counts once a conn answers or is probed alive at an idle age the
//     timer it stands for would not allow (provisional.go).
//   - Failure (source "failure"): a Release with Err on a reused conn before any response
//     byte (not a timeout, not CloseRequestError), coming within a few connect times of the
//     checkout (a later reset met a request the backend was handling: no idle evidence), is
//     a reset at its idle age at checkout. Within 25% below the learned value it lowers it at
//     once. Otherwise one reset proves little: a restart, a crash or a load balancer resets
//     conns of every idle age, and the age of the one that carried a request is only the
//     traffic's gap. So it is an event like an observed close (a second one agreeing within
//     25% inside LearnWindow makes it the learned value), and until then a provisional value
//     (provisional.go) that bounds non-idempotent requests at once, as a learned value would
//     (so POSTs are as safe from the first reset as before), while idempotent requests keep
//     their idle timeout (if it was the timer, the next crossing is re-sent on a fresh conn).
//     A provisional value is refuted when a conn answers or is probed alive at an idle age a
//     timer at that age would not allow (max(age/0.75, age+minMargin)): it is not confirmed
//     any more, and non-idempotent requests may then also reuse a conn that was itself seen
//     alive at least as long as it is idle (the conns behind one address may have different
//     timers). It is dropped when a younger idle
//     conn is found closed within 2 sweep intervals of the reset (a restart; such a reset is
//     not taken at all), or after LearnWindow. Two agreeing events contradicted by such a
//     live conn seen within LearnWindow stay provisional. A reset below half the learned value
//     is an event only, as before.
//   - Growth: a value from observation or failure grows by 10% per GrowInterval (1 min)
//     without new evidence, up to IdleTimeout/SafetyFraction, so a raised backend timeout
//     is re-learned slowly; a too-high guess is corrected by the next observation.
//
// Every change of the learned value or its source is logged at info with the evidence that
// set it (the header, the two agreeing events and their ages, or the reset that agreed with
// the learned value; Snapshot.LearnedEvidence); a provisional value is logged when it is set
// and when it is dropped, and why (Snapshot.Provisional).
//
// # Self-healing
//
// Failures on reused conns before any response byte are counted in a sliding window
// (HealWindow, 30s); the failures of requests already in flight when one was seen count
// with it as one (a restart resets them all at once). HealThreshold (3) of them despite learning halve a reuse factor that
// scales the effective idle timeout: 1, 1/2, 1/4, 1/8, then 0 (every request gets a fresh
// conn), logged at warn. After HealQuiet (60s) without such failures and since the last
// change, the factor doubles back (0 goes to 1/8), up to 1, logged at info.
//
// # Limits and queue
//
// MaxConns counts idle, in-use and dialing conns. At the cap, Get waits in a FIFO queue
// (MaxPending long, else 503 pool_queue_full; QueueTimeout, else 503 pool_queue_timeout).
// A released conn is handed to the first waiter; a closed conn hands its slot over. When
// the pool is at the cap with only idle conns a non-idempotent request may not use, the
// oldest is closed (reason "evicted") to dial a fresh one. Enabled=false dials per request
// and closes on Release (keepalive_disabled).
//
// # Observability
//
// [Pool.Snapshot] gives the learned value and its source, the effective idle timeout,
// the reuse factor, counters (opened, reused, stale caught, closes by [CloseReason], queue
// waits, dial errors, TLS handshakes full and resumed and their failures), the live conns
// and the last History (64) closed conns' records.
package connpool
