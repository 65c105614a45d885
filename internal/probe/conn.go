package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"syscall"
	"time"

	"sluice/internal/h1"
)

// errClosedBeforeResponse reports that the backend closed (FIN or RST) a connection
// instead of answering a request written on it: no response byte arrived.
var errClosedBeforeResponse = errors.New("connection closed before any response byte")

// conn is one probe connection: a socket, its reader, and the request it sends.
type conn struct {
	nc   net.Conn
	br   *bufio.Reader
	req  []byte
	resp h1.Response
	body h1.BodyReader
	buf  []byte
}

// dial opens a connection to addr, over TLS when o.TLS is set (the handshake within the
// dial timeout).
func dial(ctx context.Context, addr string, o *Options) (*conn, error) {
	d := net.Dialer{Timeout: o.DialTimeout}
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err // a *net.OpError: "dial tcp ADDR: connect: connection refused"
	}
	if o.TLS != nil {
		hctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
		tc := tls.Client(nc, o.TLS)
		err := tc.HandshakeContext(hctx)
		cancel()
		if err != nil {
			nc.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", addr, err)
		}
		nc = tc
	}
	return &conn{nc: nc, br: bufio.NewReaderSize(nc, 8192), req: o.request(), buf: make([]byte, 16384)}, nil
}

// roundTrip writes the probe request and reads the whole response, within the read
// timeout. A close before the first response byte is errClosedBeforeResponse.
func (c *conn) roundTrip(timeout time.Duration) error {
	if err := c.nc.SetDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	if _, err := c.nc.Write(c.req); err != nil {
		if isClosed(err) {
			return fmt.Errorf("write request: %w: %w", errClosedBeforeResponse, err)
		}
		return fmt.Errorf("write request: %w", err)
	}
	for {
		err := h1.ReadResponse(c.br, &c.resp, false, h1.Limits{})
		switch {
		case errors.Is(err, io.EOF) || (err != nil && isClosed(err)):
			return fmt.Errorf("read response: %w: %w", errClosedBeforeResponse, err)
		case err != nil:
			return fmt.Errorf("read response: %w", err)
		}
		if c.resp.Status >= 200 {
			break
		}
	}
	c.body.Reset(c.br, c.resp.ContentLength, c.resp.Chunked, 0)
	if c.resp.NoBody {
		c.body.Reset(nil, 0, false, 0)
	}
	for {
		_, err := c.body.Read(c.buf)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read response body: %w", err)
		}
	}
}

// close closes the socket; errors do not matter to a probe.
func (c *conn) close() { _ = c.nc.Close() }

// isClosed reports whether err means the peer closed or reset the connection.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		errors.Is(err, syscall.ECONNABORTED)
}

// isTimeout reports whether err is a deadline expiry.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
