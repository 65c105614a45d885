package server

// HTTP/2 connections.
//
// A connection becomes HTTP/2 when its TLS handshake chose "h2" by ALPN, or, on a listener
// with h2c, when a plain TCP client starts with the HTTP/2 preface (prior knowledge, RFC
// 9113 §3.3). It is then served by Sluice's own server connection (h2own.go), which
// carries the limits of the listener when it was accepted and can be drained alone (a
// reload that removes its listener). Each stream is a [Stream], handed to the Handler's
// ServeH2 as an HTTP/1.1 request is handed to ServeH1. docs/design.md ("HTTP/2 downstream:
// an own server connection") has why.

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"net"
	"sync"
	"time"

	"golang.org/x/net/http2"
)

// H2Settings are a listener's HTTP/2 settings (config listeners[].protocols and http2).
type H2Settings struct {
	// Cleartext serves h2c with prior knowledge on a listener without TLS.
	Cleartext bool
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS.
	MaxConcurrentStreams uint32
	// StreamWindow and ConnWindow are the flow-control windows of a request body and of
	// the connection, in bytes.
	StreamWindow, ConnWindow int32
	// MaxFrameBytes is SETTINGS_MAX_FRAME_SIZE.
	MaxFrameBytes uint32
	// Per second: RST_STREAM frames, PING and SETTINGS frames, empty frames. And the
	// CONTINUATION frames of one header block. See h2own.go.
	MaxResetsPerSecond, MaxControlPerSecond, MaxEmptyPerSecond, MaxContinuations int
	// DrainWait is the pause between the two GOAWAY frames of a graceful drain.
	DrainWait time.Duration
}

// StreamHandler is the Handler capability that serves HTTP/2 streams. A Handler without it
// gets HTTP/1.x connections only, whatever the settings say.
type StreamHandler interface {
	// ServeH2 serves one stream, as ServeH1 serves one HTTP/1.1 request. It may run on many
	// goroutines at once (one per stream).
	ServeH2(s *Stream)
}

// H2Observer is an optional Handler capability: it is told what happens on HTTP/2
// connections, for metrics.
type H2Observer interface {
	// H2Conn counts an HTTP/2 connection that began (h2 over TLS or h2c).
	H2Conn(listener string, tls bool)
	// H2GoAway counts a GOAWAY sent to a client, by error code name (NO_ERROR for a drain).
	H2GoAway(listener, code string)
	// H2Limit counts a client that passed a limit (Limit* names): its connection was
	// closed with GOAWAY ENHANCE_YOUR_CALM, or, for LimitHeaderList, its stream answered 431.
	H2Limit(listener, limit string)
	// H2Error counts a protocol error found on a client connection, by its token
	// "scope_CODE_what" (such as "conn_PROTOCOL_even_stream_id" or
	// "stream_REFUSED_STREAM_over_max_streams").
	H2Error(listener, token string)
}

// h2Conn is the HTTP/2 state of a client connection.
type h2Conn struct {
	c   *conn
	own *h2Own
	obs H2Observer // nil: none
	sh  StreamHandler

	drainOnce sync.Once // Shutdown's wake-up and serveH2's own check may both ask
}

// h2Offered reports whether the connection, just accepted and handshaken, is HTTP/2 by
// ALPN; h2cPreface whether a plain one starts with the preface (it may read for that,
// under the read_header_timeout that awaitFirstByte armed).
func (c *conn) h2Offered() bool {
	return c.st.H2 != nil && c.tls != nil && c.tls.NegotiatedProtocol == http2.NextProtoTLS
}

func (c *conn) h2cPreface() bool {
	if c.st.H2 == nil || !c.st.H2.Cleartext || c.tls != nil {
		return false
	}
	if _, ok := c.srv.handler.(StreamHandler); !ok {
		return false
	}
	for n := 1; ; {
		b, err := c.br.Peek(n)
		if err != nil {
			return false
		}
		if string(b) != h2Preface[:len(b)] {
			return !http1Line(c.br)
		}
		if len(b) == len(h2Preface) {
			return true
		}
		n = min(max(len(b)+1, c.br.Buffered()), len(h2Preface))
	}
}

// http1Line reports whether the first line buffered in br could be an HTTP/1.x
// request-line (it ends in " HTTP/1.x"), or is not all there yet. On an h2c listener, a
// first line that is not one is taken for a broken HTTP/2 preface: the HTTP/2 connection
// closes it (RFC 9113 §3.4) rather than the HTTP/1.1 parser answering 400.
func http1Line(br *bufio.Reader) bool {
	b, _ := br.Peek(br.Buffered())
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		return true
	}
	line := bytes.TrimSuffix(b[:i], []byte("\r"))
	return len(line) == 0 || bytes.HasSuffix(line[:len(line)-1], []byte(" HTTP/1."))
}

// serveH2 serves the connection as HTTP/2 until it ends.
func (c *conn) serveH2() {
	sh, ok := c.srv.handler.(StreamHandler)
	if !ok {
		return
	}
	var pre []byte
	if c.br != nil && c.br.Buffered() > 0 {
		b, _ := c.br.Peek(c.br.Buffered())
		pre = bytes.Clone(b)
	}
	c.releaseBufs() // the connection has its own
	// Deadlines from here on are the connection's (h2own.go).
	c.rw.SetDeadline(time.Time{})
	var nc net.Conn = c.rw
	tc := (*tls.Conn)(nil)
	if t, ok := c.rw.(*tlsConn); ok {
		tc = t.Conn
	}
	h := &h2Conn{c: c, sh: sh}
	h.obs, _ = c.srv.handler.(H2Observer)
	h.own = newH2Own(h, nc, pre)
	c.mu.Lock()
	c.h2 = h
	c.state = stateActive
	c.mu.Unlock()
	if h.obs != nil {
		h.obs.H2Conn(c.st.Name, tc != nil)
	}
	if c.srv.closing.Load() {
		go h.drain()
	}
	h.own.serve()
}

// drain ends the connection gracefully: a GOAWAY that announces the end without limiting
// the streams (stream id 2^31-1), then, DrainWait later (about one round trip plus what the
// client had in flight), a GOAWAY that names the last stream taken. Streams up to it
// finish; the connection closes after them. A client that raced a new stream against the
// first GOAWAY gets it served, not refused (RFC 9113 §6.8).
func (h *h2Conn) drain() { h.drainOnce.Do(h.own.drain) }

func (h *h2Conn) goAway(last uint32, code http2.ErrCode) {
	lg := h.c.srv.log
	if code == http2.ErrCodeNo {
		lg.Debug("HTTP/2 GOAWAY sent", "remote", h.c.clientIP, "last_stream", last, "code", code.String())
	} else {
		lg.Info("HTTP/2 connection closed with GOAWAY", "remote", h.c.clientIP, "last_stream", last, "code", code.String())
	}
	if h.obs != nil {
		h.obs.H2GoAway(h.c.st.Name, code.String())
	}
}

func (h *h2Conn) limit(limit string, count int, closing bool) {
	if closing {
		h.c.srv.log.Warn("HTTP/2 client over a limit; closing its connection with GOAWAY", "remote", h.c.clientIP, "limit", limit, "count", count)
	} else {
		h.c.srv.log.Warn("HTTP/2 client over a limit; its stream is refused", "remote", h.c.clientIP, "limit", limit, "count", count)
	}
	if h.obs != nil {
		h.obs.H2Limit(h.c.st.Name, limit)
	}
}

func (h *h2Conn) countError(token string) {
	h.c.srv.log.Debug("HTTP/2 protocol error", "remote", h.c.clientIP, "error", token)
	if h.obs != nil {
		h.obs.H2Error(h.c.st.Name, token)
	}
}
