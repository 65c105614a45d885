package server

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"sluice/internal/h1"
	"sluice/internal/reason"
)

var syscallEMFILE = syscall.EMFILE

// Connection states, for graceful shutdown: an idle connection (between requests) is closed at
// once, an active one finishes its request first.
const (
	stateActive int32 = iota
	stateIdle
)

// maxDrain is how much unread request body the server discards to keep a connection alive
// after a handler answered without reading the whole body.
const maxDrain = 256 << 10

var bufPool = sync.Pool{New: func() any { return new(connBufs) }}

type connBufs struct {
	br *bufio.Reader
	bw *bufio.Writer
}

type conn struct {
	srv      *Server
	nc       net.Conn
	st       *Settings
	br       *bufio.Reader
	bw       *bufio.Writer
	clientIP string

	mu    sync.Mutex // guards state transitions against Shutdown's wake-up
	state int32

	served atomic.Int64
	ex     Exchange
}

func newConn(s *Server, nc net.Conn, st *Settings) *conn {
	c := &conn{srv: s, nc: nc, st: st, state: stateActive}
	if host, _, err := net.SplitHostPort(nc.RemoteAddr().String()); err == nil {
		c.clientIP = host
	}
	return c
}

func (c *conn) serve() {
	defer c.srv.forget(c)
	bufs := bufPool.Get().(*connBufs)
	if bufs.br == nil {
		bufs.br = bufio.NewReaderSize(c.nc, 8<<10)
		bufs.bw = bufio.NewWriterSize(c.nc, 16<<10)
	} else {
		bufs.br.Reset(c.nc)
		bufs.bw.Reset(c.nc)
	}
	c.br, c.bw = bufs.br, bufs.bw
	defer func() {
		c.nc.Close()
		bufs.br.Reset(nil)
		bufs.bw.Reset(nil)
		bufPool.Put(bufs)
	}()
	defer func() {
		if v := recover(); v != nil {
			c.srv.log.Error("panic serving connection", "remote", c.clientIP, "panic", v)
		}
	}()

	ex := &c.ex
	ex.c = c
	for n := 0; ; n++ {
		if n > 0 && !c.waitNextRequest() {
			return
		}
		if !c.setActive() {
			return
		}
		c.setReadDeadline(c.st.ReadHeaderTimeout)
		ex.reset()
		err := h1.ReadRequest(c.br, &ex.Req, c.st.Limits)
		if err != nil {
			c.rejectRequest(err)
			return
		}
		ex.start()
		c.srv.handler.ServeH1(ex)
		if !ex.finish() {
			return
		}
		c.served.Add(1)
	}
}

// waitNextRequest waits, up to the idle timeout, for the first byte of the next request.
func (c *conn) waitNextRequest() bool {
	if c.br.Buffered() > 0 {
		return true // pipelined
	}
	c.mu.Lock()
	c.state = stateIdle
	c.mu.Unlock()
	if c.srv.closing.Load() {
		return false
	}
	c.setReadDeadline(c.st.IdleTimeout)
	_, err := c.br.Peek(1)
	return err == nil
}

func (c *conn) setActive() bool {
	c.mu.Lock()
	c.state = stateActive
	c.mu.Unlock()
	return true
}

// wakeIfIdle makes an idle connection's wait return so that it can close during Shutdown.
func (c *conn) wakeIfIdle() {
	c.mu.Lock()
	if c.state == stateIdle {
		c.nc.SetReadDeadline(time.Unix(1, 0))
	}
	c.mu.Unlock()
}

func (c *conn) setReadDeadline(d time.Duration) {
	if d > 0 {
		c.nc.SetReadDeadline(time.Now().Add(d))
	} else {
		c.nc.SetReadDeadline(time.Time{})
	}
}

func (c *conn) setWriteDeadline() {
	if d := c.st.WriteTimeout; d > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(d))
	}
}

// rejectRequest answers a request that could not be parsed, then the connection closes.
// A clean close or a timeout before any request byte gets no answer.
func (c *conn) rejectRequest(err error) {
	var pe *h1.Error
	if !errors.As(err, &pe) {
		if errors.Is(err, os.ErrDeadlineExceeded) && c.br.Buffered() > 0 {
			c.writeSimpleError(408, reason.ClientTimeout, "request head not received in time")
		}
		return
	}
	code := reason.BadRequest
	switch pe.Status {
	case 431, 414:
		code = reason.HeaderTooLarge
	case 501:
		code = reason.NotImplemented
	case 505:
		code = reason.VersionNotSupp
	}
	c.srv.log.Debug("rejected malformed request", "remote", c.clientIP, "status", pe.Status, "why", pe.Reason)
	c.writeSimpleError(pe.Status, code, pe.Reason)
}

func (c *conn) writeSimpleError(status int, code reason.Code, detail string) {
	ex := &c.ex
	ex.c = c
	ex.closeAfter = true
	ex.WriteError(&reason.Error{Status: status, Code: code, Err: errors.New(detail)}, detail)
	c.bw.Flush()
	if tc, ok := c.nc.(*net.TCPConn); ok {
		tc.CloseWrite()
	}
}

// discardBody reads what is left of the request body, up to maxDrain, so that the connection
// can carry the next request. It reports whether the body was fully consumed.
func (c *conn) discardBody(ex *Exchange) bool {
	if ex.bodyDone() {
		return true
	}
	if ex.Req.Expect100 && !ex.sent100 {
		return false // the client waits for our word; closing is the clean answer
	}
	c.setReadDeadline(time.Second)
	n, err := io.CopyN(io.Discard, &ex.body, maxDrain+1)
	return err == io.EOF && n <= maxDrain
}
