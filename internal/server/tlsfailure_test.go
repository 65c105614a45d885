package server

import (
	"crypto/tls"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"sluice/internal/h1"
	"sluice/internal/testutil"
)

// tlsWatch serves okHandler's answer over HTTP/1.1 and bodyHandler's over HTTP/2, and keeps
// the reasons of the TLS failures the server reports (TLSObserver).
type tlsWatch struct {
	okHandler
	mu     sync.Mutex
	failed []string
}

func (w *tlsWatch) ServeH2(s *Stream)                             { bodyHandler{}.ServeH2(s) }
func (w *tlsWatch) Handshake(string, *tls.ConnectionState, error) {}
func (w *tlsWatch) TLSFailed(_, reason string) {
	w.mu.Lock()
	w.failed = append(w.failed, reason)
	w.mu.Unlock()
}

// take returns the reasons reported since the last take.
func (w *tlsWatch) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	f := w.failed
	w.failed = nil
	return f
}

// TestTLSFailuresObserved: a connection that ends on a TLS error after its handshake (each
// answered by crypto/tls with an alert) is reported to the TLSObserver with its reason and
// logged at debug level, over HTTP/1.1 and HTTP/2; a client that closes (a FIN,
// close_notify, a reset while idle) is not. Each connection carried a request first.
func TestTLSFailuresObserved(t *testing.T) {
	ca := testutil.NewCA(t)
	hello := clientHelloMsg(t, ca)
	cases := []struct {
		name string
		send func(t *testing.T, c *tls13Records)
		want string // "": not a TLS error
	}{
		{"record with a bad MAC", func(t *testing.T, c *tls13Records) {
			c.raw.Write(append([]byte{23, 3, 3, 0, 20}, make([]byte, 20)...))
		}, "bad_record_mac"},
		{"record too large", func(t *testing.T, c *tls13Records) {
			c.raw.Write([]byte{23, 3, 3, 0x41, 0x01}) // 16641 bytes: over TLS 1.3's 2^14+256
		}, "record_overflow"},
		{"renegotiation", func(t *testing.T, c *tls13Records) { c.write(t, 22, hello) }, "renegotiation"},
		{"key update flood", func(t *testing.T, c *tls13Records) {
			for range 20 { // the server may close after the 17th: write errors are expected
				c.raw.Write(c.out.seal(22, []byte{24, 0, 0, 1, 0})) // KeyUpdate, update_not_requested
				c.out.update()
			}
		}, "record_flood"},
		{"fatal alert", func(t *testing.T, c *tls13Records) { c.write(t, 21, []byte{2, 48}) }, "alert"}, // unknown_ca
		{"unknown record type", func(t *testing.T, c *tls13Records) { c.write(t, 99, []byte("x")) }, "protocol_error"},
		{"close_notify", func(t *testing.T, c *tls13Records) { c.write(t, 21, []byte{1, 0}) }, ""},
		{"FIN", func(t *testing.T, c *tls13Records) { c.raw.(*net.TCPConn).CloseWrite() }, ""},
		{"reset while idle", func(t *testing.T, c *tls13Records) {
			c.raw.(*net.TCPConn).SetLinger(0)
			c.raw.Close()
		}, ""},
	}
	for _, proto := range []string{"http/1.1", "h2"} {
		w := &tlsWatch{}
		var logs lockedBuffer
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		st := Settings{Name: "t", ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 5 * time.Second, WriteTimeout: 5 * time.Second,
			IdleTimeout: time.Minute, HandshakeTimeout: 5 * time.Second, Limits: h1.Limits{MaxHeaderBytes: 65536, MaxHeaders: 100},
			TLS: ca.ServerConfig(t, "srv.test"),
			H2: &H2Settings{MaxConcurrentStreams: 10, StreamWindow: 1 << 20, ConnWindow: 1 << 20, MaxFrameBytes: 16384,
				MaxResetsPerSecond: 100, MaxControlPerSecond: 100, MaxEmptyPerSecond: 100, MaxContinuations: 16, DrainWait: 10 * time.Millisecond}}
		st.TLS.NextProtos = []string{"h2", "http/1.1"}
		srv := New(ln, st, w, slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
		go srv.Serve()
		t.Cleanup(func() { srv.Shutdown(t.Context()) })
		for _, tc := range cases {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				c := dialTLS13Records(t, ca, ln.Addr().String(), proto)
				if proto == "h2" {
					h2Request(t, c)
				} else {
					c.request(t, "/1")
				}
				tc.send(t, c)
				io.Copy(io.Discard, c.raw) // the alert, then the close
				testutil.WaitFor(t, 5*time.Second, "the connection gone", func() bool { return srv.Active() == 0 })
				var want []string
				if tc.want != "" {
					want = []string{tc.want}
				}
				if got := w.take(); !slices.Equal(got, want) {
					t.Errorf("reported %q, want %q", got, want)
				}
				line := ""
				for l := range strings.Lines(logs.String()) {
					if strings.Contains(l, `msg="TLS connection failed"`) && strings.Contains(l, "remote=127.0.0.1") {
						line = l
					}
				}
				logs.mu.Lock()
				logs.b.Reset()
				logs.mu.Unlock()
				switch {
				case tc.want == "" && line != "":
					t.Errorf("logged a client's close as a failure: %s", line)
				case tc.want != "" && !strings.Contains(line, "reason="+tc.want+" "):
					t.Errorf("log line %q, want one with reason=%s", line, tc.want)
				}
			})
		}
	}
}

// h2Request starts HTTP/2 on c and has one stream served.
func h2Request(t *testing.T, c *tls13Records) {
	t.Helper()
	r, rs := startH2Records(c)
	r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: 1, BlockFragment: r.block("GET", "/early"), EndHeaders: true, EndStream: true})
	got, _ := r.read(t, 5*time.Second, 1)
	if s := got[1]; s == nil || s.status != "200" {
		t.Fatalf("stream 1: %+v (%v)", s, rs.err)
	}
}

// clientHelloMsg returns a ClientHello handshake message from crypto/tls's client.
func clientHelloMsg(t *testing.T, ca *testutil.CA) []byte {
	a, b := net.Pipe()
	defer b.Close()
	go func() {
		tls.Client(a, ca.ClientConfig("srv.test")).Handshake()
		a.Close()
	}()
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(b, hdr); err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(b, msg); err != nil {
		t.Fatal(err)
	}
	return msg
}
