package proxy

import (
	"errors"
	"io"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"sluice/internal/connpool"
	"sluice/internal/h1"
	"sluice/internal/netio"
	"sluice/internal/reason"
	"sluice/internal/upstream"
)

// awaitFinal reads response heads into fwd.resp until the final one (or a 101), relaying
// interim (1xx) responses to the client on the way. The whole wait, interim responses
// included, is bounded by timeout (0: none): a backend that sends 102 Processing every second
// does not hold the request past it. ok is false when the wait failed; res and out say how.
func awaitFinal(fwd *forward, c *connpool.Conn, t *upstream.Target, timeout time.Duration) (res result, out connpool.Outcome, ok bool) {
	// One clock read gives the deadline and the first wait's client-check step; a wait after
	// an interim response reads the clock again.
	now := time.Now()
	var deadline time.Time
	if timeout > 0 {
		deadline = now.Add(timeout)
	}
	late := netio.Slack(timeout)
	isHEAD := string(fwd.req.Method) == "HEAD"
	for {
		if res, ok := awaitResponse(fwd.ds, now, deadline, late, c, t); !ok {
			return res, failedBy(res), false
		}
		if err := h1.ReadResponse(c.R, &fwd.resp, isHEAD, h1.Limits{}); err != nil {
			return classifyRead(err, c.BytesRead(), t.Addr), failed(connpool.CloseProtocolError), false
		}
		if fwd.resp.Status >= 200 || fwd.resp.Status == 101 {
			return result{}, connpool.Outcome{}, true
		}
		if res, ok := fwd.relayInterim(t); !ok {
			return res, failedBy(res), false
		}
		now = time.Now()
	}
}

// relayInterim passes the interim (1xx) response in fwd.resp to the client, which must get
// it unless it speaks HTTP/1.0 (RFC 9110 §15.2), without its hop-by-hop fields. 100 Continue
// is not passed: the gateway answers a client's Expect: 100-continue itself (the upstream
// request carries no Expect) before it reads the body.
func (f *forward) relayInterim(t *upstream.Target) (result, bool) {
	resp := &f.resp
	if resp.Status == 100 || f.interim == nil {
		return result{}, true
	}
	resp.Header.RemoveHopByHop()
	sent, err := f.interim.WriteInterim(resp.Status, resp.Reason, &resp.Header)
	if err != nil {
		return result{err: reason.New(499, reason.ClientBodyError, t.Addr, err), clientGone: true}, false
	}
	if sent {
		f.rec.Interim++
	}
	return result{}, true
}

// relayResponse writes the upstream response head to the client and streams the body. Bytes
// are flushed to the client whenever the upstream has nothing more buffered, so server-sent
// events and other trickling bodies reach the client at once while bulk bodies go in large
// writes.
func (p *Proxy) relayResponse(fwd *forward, c *connpool.Conn, t *upstream.Target, resp *h1.Response, isHEAD bool) (result, connpool.Outcome) {
	ds, body := fwd.ds, &fwd.body
	out := connpool.Outcome{KeepAliveTimeout: resp.KeepAliveTimeout, KeepAliveMax: resp.KeepAliveMax}
	framing := resp.ContentLength
	switch {
	case resp.Status < 200 || resp.Status == 204 || resp.Status == 304:
		framing = h1.LengthNone
	case isHEAD:
		framing = h1.LengthNone
		if v, ok := resp.Header.Get("Content-Length"); ok {
			if n, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				framing = n
			}
		}
	case resp.Chunked || resp.UntilClose:
		framing = h1.LengthUnknown
	}
	resp.Header.RemoveHopByHop()
	if !resp.Header.Has("X-Request-Id") {
		resp.Header.Add("X-Request-Id", string(ds.RequestIDBytes())) // Add copies: no allocation
	}
	var bf BodyFilter
	if fwd.hooks != nil {
		fwd.hooks.ResponseHead(resp.Status, &resp.Header)
		// The body phase: only for a response with a body, and only when a filter says it
		// changes this one; then the length is unknown until the end.
		if bh, ok := fwd.hooks.(BodyHooks); ok && !resp.NoBody && !isHEAD {
			if bf = bh.ResponseBody(resp.Status, &resp.Header); bf != nil {
				framing = h1.LengthUnknown
			}
		}
	}
	// Removed after the hooks, which may read it (compress's min_size): framing says it.
	resp.Header.Del("Content-Length")
	if err := ds.WriteHead(resp.Status, resp.Reason, &resp.Header, framing); err != nil {
		out.Reason = connpool.CloseRequestError
		return result{err: reason.New(499, reason.ClientBodyError, t.Addr, err), clientGone: true}, out
	}
	if resp.NoBody {
		out.Reusable = !resp.Close
		if resp.Close {
			out.Reason = connpool.CloseBackendClose
		}
		return result{}, out
	}
	body.Reset(c.R, resp.ContentLength, resp.Chunked, 0)
	if res, ok := p.streamBody(fwd, c, t, bf); !ok {
		out.Reason = connpool.CloseRequestError
		return res, out
	}
	if resp.Chunked {
		tr := body.Trailer()
		fwd.rec.DroppedResponseTrailers = p.dropTrailers(ds, tr, gatewayResponseFields, "response")
		ds.Finish(tr)
	} else if bf != nil {
		ds.Finish(nil) // the filtered body is chunked (or close-delimited) downstream
	}
	out.Reusable = !resp.Close && !resp.UntilClose
	if !out.Reusable {
		out.Reason = connpool.CloseBackendClose
	}
	return result{}, out
}

// streamBody relays the body in fwd.body to the client, through body filter bf when it is
// not nil (then nothing is spliced: every byte passes the filter).
func (p *Proxy) streamBody(fwd *forward, c *connpool.Conn, t *upstream.Target, bf BodyFilter) (result, bool) {
	ds, rt, body := fwd.ds, fwd.rt, &fwd.body
	if rest := body.Rest(); rest != nil && bf == nil {
		return relayBuffered(ds, c, t, body, rest)
	}
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	buf := *bp
	nc := c.NetConn()
	splicer, _ := ds.(ResponseSplicer)
	if c.Socket() == nil || bf != nil {
		splicer = nil
	}
	var filtered *[]byte // the filter's output buffer
	if bf != nil {
		filtered = filterBufs.Get().(*[]byte)
		defer func() { filterBufs.Put(filtered) }()
	}
	for {
		// The rest of a large Content-Length body goes socket to socket (splice) when both
		// ends are plain TCP; the buffered bytes before it are copied.
		if n := body.Direct(); splicer != nil && n >= spliceMin {
			res, spliced, ok := spliceBody(fwd, splicer, c, t, n)
			if !ok {
				return res, false
			}
			if !spliced {
				splicer = nil
			}
		}
		// Before a Read that will reach the socket (nothing buffered, or chunk framing that
		// is not all buffered): send what was relayed, and give the read the body's timeout,
		// not the head wait's client-check step.
		if c.R.Buffered() == 0 || body.InFraming() {
			if err := ds.Flush(); err != nil {
				return clientWriteFailure(ds, t, err), false
			}
			// A finished body's next Read returns io.EOF without reading: no deadline.
			if !body.Done() {
				// The route's read timeout, or none: not the head wait's client-check step.
				netio.ArmRead(nc, rt.Read)
			}
		}
		n, err := body.Read(buf)
		if bf != nil && (n > 0 || err == io.EOF) {
			// The filter's output replaces the piece; a grown buffer is kept for the pool.
			*filtered = bf.FilterBody((*filtered)[:0], buf[:n], err == io.EOF)
			if len(*filtered) > 0 {
				if _, werr := ds.Write(*filtered); werr != nil {
					return clientWriteFailure(ds, t, werr), false
				}
			}
		} else if n > 0 {
			if _, werr := ds.Write(buf[:n]); werr != nil {
				return clientWriteFailure(ds, t, werr), false
			}
		}
		if err == io.EOF {
			return result{}, true
		}
		if err != nil {
			return bodyReadFailure(ds, t, err), false
		}
	}
}

// relayBuffered writes rest, the rest of a body that is all in the upstream reader's buffer
// (a small response usually arrives with its head), to the client straight from that
// buffer: no copy buffer is taken and the bytes are copied once, not twice. It ends as
// streamBody's loop does: the response is flushed when nothing more is buffered.
func relayBuffered(ds Downstream, c *connpool.Conn, t *upstream.Target, body *h1.BodyReader, rest []byte) (result, bool) {
	n, err := ds.Write(rest)
	body.Skip(n)
	if err != nil {
		return clientWriteFailure(ds, t, err), false
	}
	if c.R.Buffered() == 0 {
		if err := ds.Flush(); err != nil {
			return clientWriteFailure(ds, t, err), false
		}
	}
	return result{}, true
}

// filterBufs hold a body filter's output, one per filtered relay.
var filterBufs = sync.Pool{New: func() any { b := make([]byte, 0, 40<<10); return &b }}

// clientWriteFailure ends a relay whose client stopped taking the response (closed, reset,
// too slow).
func clientWriteFailure(ds Downstream, t *upstream.Target, err error) result {
	ds.Abort()
	return result{err: reason.New(499, reason.ClientBodyError, t.Addr, err), clientGone: true}
}

// bodyReadFailure ends a relay whose upstream body broke off (reset, timeout, bad framing).
// The head is out: the client learns of the failure from a truncated body.
func bodyReadFailure(ds Downstream, t *upstream.Target, err error) result {
	ds.Abort()
	code := reason.ResetDuringResp
	var pe *h1.Error
	if errors.As(err, &pe) {
		code = reason.BadResponse
	} else if isTimeout(err) {
		code = reason.ResponseTimeout
	}
	return result{err: reason.New(502, code, t.Addr, err)}
}

// spliceMin is the least body left for which splicing (a pipe and two splice calls per
// chunk) beats copying through the 32 KiB buffer.
const spliceMin = 64 << 10

// spliceBody moves the n bytes left of a Content-Length body from the upstream socket to the
// client's without copying them (netio.Splice). spliced is false when this exchange cannot
// splice (not Linux, a TLS client): nothing was moved, the caller copies. ok is false when
// the relay failed; res says how.
func spliceBody(fwd *forward, rs ResponseSplicer, c *connpool.Conn, t *upstream.Target, n int64) (res result, spliced, ok bool) {
	ds, body := fwd.ds, &fwd.body
	s, started := rs.SpliceFrom(c.Socket(), n, fwd.armUpRead)
	if !started {
		return result{}, false, true
	}
	body.Moved(s.Taken)
	c.AddRead(s.Taken)
	switch {
	case s.WriteErr != nil:
		return clientWriteFailure(ds, t, s.WriteErr), true, false
	case s.ReadErr != nil:
		return bodyReadFailure(ds, t, s.ReadErr), true, false
	}
	return result{}, true, true
}

// gatewayResponseFields are the response fields only the gateway sets.
var gatewayResponseFields = []string{"X-Request-Id", "X-Sluice-Error"}

// dropTrailers removes from trailer section tr the fields that must not be sent in trailers
// (h1.ForbiddenTrailer: framing, routing, connection, controls, authentication, cookies) and
// the gateway's own (own: what it writes itself, or a route sets or removes), so that a
// recipient that merges trailers into the header section cannot be handed one (RFC 9110
// §6.5.1). It logs the names at debug level and returns how many it removed.
func (p *Proxy) dropTrailers(ds Downstream, tr *h1.Header, own []string, section string) int {
	drop := func(f *h1.Field) bool {
		if h1.ForbiddenTrailer(f.Name) {
			return true
		}
		for _, name := range own {
			if h1.EqualFold(f.Name, name) {
				return true
			}
		}
		return false
	}
	n := 0
	for i := range tr.Fields {
		if drop(&tr.Fields[i]) {
			n++
		}
	}
	if n == 0 {
		return 0
	}
	if ctx := ds.Context(); p.log.Enabled(ctx, slog.LevelDebug) {
		var names []string
		for i := range tr.Fields {
			if drop(&tr.Fields[i]) {
				names = append(names, string(tr.Fields[i].Name))
			}
		}
		p.log.LogAttrs(ctx, slog.LevelDebug, "dropped trailer fields", slog.String("request_id", string(ds.RequestIDBytes())),
			slog.String("section", section), slog.Any("fields", names))
	}
	return tr.RemoveFunc(drop)
}
