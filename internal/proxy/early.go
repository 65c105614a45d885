package proxy

// Early responses.
//
// A backend may answer before it has read the whole request body: 413 or 401 as soon as it
// has seen the head, and then close the connection (with the body unread, its kernel resets
// it) or stop reading. RFC 9112 §9.5 asks a client that sends a body to watch for such a
// response and stop sending; a proxy that does not either loses the answer (the reset breaks
// its next write: 502) or waits, blocked on a write the backend will never read, for its
// write timeout (504). Which of the two happened used to depend on timing.
//
// While the body is sent, the waits of its writes to the upstream and of its reads from the
// client are watched (netio.Conn.Watch, Downstream capability BodyWatcher): a wait runs in
// steps (watchFirst doubling up to watchMax), and between steps upstreamQuiet peeks at the
// upstream socket. Bytes there are read as a response head: an interim one (1xx) is passed
// to the client and the body goes on; a final one that refuses the body (a status of 300 or
// more, or Connection: close) stops it, and the response is relayed as usual. A 2xx that
// keeps the connection has not refused the body: the backend answers while it reads (its
// response body may wait for the request's end), so the rest is sent and the response
// relayed after it, as without the watch; only if the body then fails is the 2xx the answer.
// The upstream's close or a failure stops the body too, and is judged as any failure to read
// the response. A write or client read that fails (the reset that follows an answer and
// close) also looks at the upstream first: a response that arrived before the failure is the
// answer, whatever the timing. Writes and reads that need not wait cost nothing more, and no
// second goroutine is needed (see docs/design.md, "Early responses").
//
// A final response that came early means the backend processed the request: it is never
// taken for a reset. Status retries (retry.statuses) still apply to it as to any response,
// when the whole body is held to be sent again. The upstream connection is not reused (it
// stands inside a request), and the client's connection closes after the answer unless the
// rest of its body is small enough to drain (see server.Exchange.WriteHead and finish).

import (
	"time"

	"sluice/internal/connpool"
	"sluice/internal/h1"
	"sluice/internal/netio"
	"sluice/internal/upstream"
)

// Steps of a watched wait: an answer that comes at once is seen within a few tens of ms; a
// long wait (a slow client, a backend that reads slowly) costs a wake-up a second.
const (
	watchFirst = 25 * time.Millisecond
	watchMax   = time.Second
)

// sendBody streams the client's request body to the upstream, watching the upstream for an
// early response. ok with fwd.headIn set: the final response head came while the body was
// sent (it is in fwd.resp); with fwd.early too, the rest of the body was not sent for it.
func (p *Proxy) sendBody(fwd *forward, c *connpool.Conn, t *upstream.Target) (result, bool) {
	watched := c.Socket() != nil // peeks need the plain socket
	if watched {
		c.Socket().Watch(fwd.watchUp, watchFirst, watchMax)
		defer c.Socket().Watch(nil, 0, 0)
		if bw, ok := fwd.ds.(BodyWatcher); ok {
			bw.WatchBody(fwd.watchUp, watchFirst, watchMax)
			defer bw.WatchBody(nil, 0, 0)
		}
	}
	res, ok := p.copyBody(fwd, c, t)
	if ok {
		return res, true
	}
	stopped := fwd.early || fwd.earlyFailed // the watch stopped the body
	if watched && !stopped && !fwd.headIn {
		// The failure may have come after an answer (the reset after a 413 and close):
		// the answer wins. Otherwise the failure stands as it was met.
		fwd.upstreamQuiet()
	}
	fwd.early = fwd.early || fwd.headIn // a 2xx head, then the body failed: the head answers
	switch {
	case fwd.early:
		fwd.rec.EarlyResponse = true
		return result{}, true
	case stopped:
		return fwd.earlyRes, false
	}
	return res, false
}

// upstreamQuiet is the watch of a request body's waits: it reports whether the body goes on.
// It reads what the upstream sent: interim responses are passed to the client (and the body
// goes on if nothing more came); a final head sets f.headIn, and f.early when it refuses the
// body (which stops); a failure to read one (the upstream closed, reset, or sent garbage)
// sets f.earlyFailed.
func (f *forward) upstreamQuiet() bool {
	if f.early || f.earlyFailed {
		return false
	}
	if f.watching || f.headIn {
		return true // a wait inside this one's own reads or interim writes; or a 2xx is in
	}
	c := f.c
	for {
		if c.R.Buffered() == 0 {
			if r, err := c.Socket().PeekNow(); err == nil && r == netio.PeekNothing {
				return true
			}
		}
		f.watching = true
		res, final := f.readEarlyHead()
		f.watching = false
		switch {
		case res.err != nil:
			f.earlyFailed, f.earlyRes = true, res
			return false
		case final:
			f.headIn = true
			if f.resp.Status < 300 && f.resp.Status != 101 && !f.resp.Close {
				return true // accepted: the backend reads the rest while it answers
			}
			f.early = true
			return false
		}
	}
}

// readEarlyHead reads one response head that has begun to arrive while the body is sent,
// under the attempt's response timeout, and passes it on if it is an interim one.
func (f *forward) readEarlyHead() (res result, final bool) {
	c := f.c
	if !h1.HeadBuffered(c.R) {
		var deadline time.Time
		if f.wait > 0 {
			deadline = time.Now().Add(f.wait)
		}
		netio.ExtendRead(c.NetConn(), deadline, netio.Slack(f.wait))
	}
	if err := h1.ReadResponse(c.R, &f.resp, string(f.req.Method) == "HEAD", h1.Limits{}); err != nil {
		return classifyRead(err, c.BytesRead(), f.t.Addr), false
	}
	if f.resp.Status >= 200 || f.resp.Status == 101 {
		return result{}, true
	}
	res, _ = f.relayInterim(f.t)
	return res, false
}
