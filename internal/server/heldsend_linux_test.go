package server

import (
	"context"
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"syscall"
	"testing"
	"time"

	"sluice/internal/h1"
	"sluice/internal/testutil"
)

// heldBody is a response that fits the 16 KiB write buffer whole: all of it is held for
// the wait for the next request (Exchange.holdable) and goes out in that wait's send.
const heldBody = 16000

type heldBodyHandler struct{}

func (heldBodyHandler) ServeH1(ex *Exchange) {
	var h h1.Header
	ex.WriteHead(200, nil, &h, heldBody)
	ex.Write(make([]byte, heldBody))
}

// smallSendBuffers accepts connections with the smallest send buffer the kernel allows, so
// that a held response does not all fit in the socket at once.
type smallSendBuffers struct{ net.Listener }

func (l smallSendBuffers) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetWriteBuffer(1)
	}
	return nc, err
}

// TestHeldSendTimeoutCloses: a held response that the client does not read (the send
// inside the wait for the next request does not all fit, and its rest meets the write
// timeout) closes the connection, as a write timeout does anywhere else, plain or TLS. The
// failed send surfaced from that wait's read as a timeout, so the connection went on idling
// (until the idle timeout, here a minute) with a truncated response: a client that then sent
// its next request (over plain TCP) got that answer's bytes as the rest of the first body.
func TestHeldSendTimeoutCloses(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, tc := range []struct {
		name string
		tls  bool
	}{{"plain", false}, {"tls", true}} {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			st := Settings{Name: "t", ReadHeaderTimeout: time.Minute, ReadTimeout: time.Minute, WriteTimeout: 300 * time.Millisecond,
				IdleTimeout: time.Minute, HandshakeTimeout: 5 * time.Second, Limits: h1.Limits{MaxHeaderBytes: 65536, MaxHeaders: 100}}
			if tc.tls {
				st.TLS = ca.ServerConfig(t, "srv.test")
			}
			srv := New(smallSendBuffers{ln}, st, heldBodyHandler{}, slog.New(slog.NewTextHandler(io.Discard, nil)))
			go srv.Serve()
			t.Cleanup(func() {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				defer cancel()
				srv.Shutdown(ctx)
			})
			// The smallest receive buffer, before the connection opens its window.
			d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
				return rc.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 1) })
			}}
			raw, err := d.Dial("tcp", ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			var c net.Conn = raw
			if tc.tls {
				tc := tls.Client(raw, ca.ClientConfig("srv.test"))
				tc.SetDeadline(time.Now().Add(10 * time.Second))
				if err := tc.Handshake(); err != nil {
					t.Fatal(err)
				}
				c = tc
			}
			if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: h\r\n\r\n"); err != nil {
				t.Fatal(err)
			}
			// The client reads nothing: the response's send meets the write timeout (TLS:
			// then close_notify meets crypto/tls's own 5 s bound), and the connection closes.
			closed := false
			for end := time.Now().Add(20 * time.Second); !closed && time.Now().Before(end); {
				time.Sleep(5 * time.Millisecond)
				closed = srv.Active() == 0
			}
			c.SetReadDeadline(time.Now().Add(time.Second))
			got, _ := io.Copy(io.Discard, c)
			switch {
			case got >= heldBody:
				t.Fatalf("the client got %d bytes: the whole response fit in the socket, which this test needs it not to", got)
			case !closed:
				t.Fatalf("the connection stayed open past the write timeout with %d bytes of the response sent", got)
			}
		})
	}
}
