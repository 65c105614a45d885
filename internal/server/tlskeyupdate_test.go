package server

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"

	"sluice/internal/h1"
	"sluice/internal/netio"
	"sluice/internal/testutil"
)

type okHandler struct{}

// serveOK serves okHandler on l with st until the test ends.
func serveOK(t *testing.T, l net.Listener, st Settings) *Server {
	return serveUntilEnd(t, l, st, okHandler{})
}

// serveUntilEnd serves h on l with st until the test ends.
func serveUntilEnd(t *testing.T, l net.Listener, st Settings, h Handler) *Server {
	srv := New(l, st, h, slog.New(slog.NewTextHandler(io.Discard, nil)))
	go srv.Serve()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return srv
}

func (okHandler) ServeH1(ex *Exchange) {
	io.Copy(io.Discard, ex.Body())
	var h h1.Header
	ex.WriteHead(200, nil, &h, 2)
	ex.Write([]byte("ok"))
}

// TestTLSKeyUpdateAfterIdle: a TLS 1.3 client that asks for a key update (KeyUpdate with
// update_requested, as openssl s_client's "K" sends) after idling longer than write_timeout,
// or than handshake_timeout on a new connection, then sends its next request, gets its
// answer. crypto/tls writes its own KeyUpdate inside the read that finds the client's; that
// write ran under the write deadline the previous response (or the handshake) had left, long
// past, so it failed, crypto/tls kept the failure for the next write (the response was never
// sent) and the close_notify went out with a skipped record number ("bad record mac").
// Over a socket that is not a netio.Conn the idle wait reads through TLS (waitReadable).
func TestTLSKeyUpdateAfterIdle(t *testing.T) {
	ca := testutil.NewCA(t)
	for _, sock := range []string{"netio", "other"} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		st := Settings{Name: "t", ReadHeaderTimeout: time.Minute, ReadTimeout: time.Minute, WriteTimeout: 100 * time.Millisecond,
			IdleTimeout: time.Minute, HandshakeTimeout: 500 * time.Millisecond, Limits: h1.Limits{MaxHeaderBytes: 65536, MaxHeaders: 100},
			TLS: ca.ServerConfig(t, "srv.test")}
		var l net.Listener = ln
		if sock == "other" {
			l = otherConns{ln}
		}
		serveOK(t, l, st)
		for _, when := range []string{"at once", "past the handshake timeout", "after an idle wait", "in a request body"} {
			t.Run(sock+"/"+when, func(t *testing.T) {
				c := dialTLS13Records(t, ca, ln.Addr().String())
				switch when {
				case "past the handshake timeout":
					time.Sleep(700 * time.Millisecond)
				case "after an idle wait":
					c.request(t, "/1")
					// Past write_timeout and its slack, and past the short wait.
					time.Sleep(400 * time.Millisecond)
				case "in a request body":
					c.request(t, "/1")
					c.write(t, 23, []byte("POST /2 HTTP/1.1\r\nHost: srv.test\r\nContent-Length: 10\r\n\r\nhello"))
					time.Sleep(400 * time.Millisecond)
				}
				c.write(t, 22, []byte{24, 0, 0, 1, 1}) // KeyUpdate, update_requested
				c.out.update()
				if when == "in a request body" {
					c.write(t, 23, []byte("world"))
					c.response(t)
				} else {
					c.request(t, "/2")
				}
				if !c.sawKeyUpdate {
					t.Error("the server answered without updating its own keys")
				}
			})
		}
	}
}

// otherConns accepts connections as a net.Conn that is not a *net.TCPConn, which
// netio.Wrap leaves as it is.
type otherConns struct{ net.Listener }

type otherConn struct{ net.Conn }

func (l otherConns) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return otherConn{nc}, nil
}

// TestTLSKeyUpdateAfterIdleH2: the same over HTTP/2, whose read loop reads through TLS
// while the connection idles.
func TestTLSKeyUpdateAfterIdleH2(t *testing.T) {
	ca := testutil.NewCA(t)
	addr := startH2CWith(t, bodyHandler{}, func(st *Settings) {
		st.TLS = ca.ServerConfig(t, "srv.test")
		st.TLS.NextProtos = []string{"h2", "http/1.1"}
		st.HandshakeTimeout = 5 * time.Second
		st.WriteTimeout = 100 * time.Millisecond
	})
	c := dialTLS13Records(t, ca, addr, "h2")
	r, rs := startH2Records(c)
	for id := uint32(1); id <= 3; id += 2 {
		if id == 3 {
			time.Sleep(400 * time.Millisecond) // past write_timeout and its slack
			c.write(t, 22, []byte{24, 0, 0, 1, 1})
			c.out.update()
		}
		r.fr.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: r.block("GET", "/early"), EndHeaders: true, EndStream: true})
		got, _ := r.read(t, 5*time.Second, id)
		if s := got[id]; s == nil || s.status != "200" || string(s.body) != "early" {
			t.Fatalf("stream %d: %+v (%v)", id, s, rs.err)
		}
	}
	if !c.sawKeyUpdate {
		t.Error("the server answered without updating its own keys")
	}
}

// startH2Records starts HTTP/2 on c (the preface, SETTINGS) and returns its frames' reader
// and writer, over the records' application data.
func startH2Records(c *tls13Records) (*rawH2Conn, *recordStream) {
	rs := &recordStream{tls13Records: c}
	r := &rawH2Conn{c: c.raw, fr: http2.NewFramer(rs, rs)}
	r.fr.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	r.enc = hpack.NewEncoder(&r.hb)
	rs.Write([]byte(h2Preface))
	r.fr.WriteSettings()
	return r, rs
}

// recordStream is the application data of a tls13Records as a byte stream.
type recordStream struct {
	*tls13Records
	pending []byte
	err     error // the read's
}

func (s *recordStream) Read(b []byte) (int, error) {
	for len(s.pending) == 0 {
		typ, data, err := s.in.open(s.raw)
		switch {
		case err != nil:
			s.err = err
			return 0, err
		case typ == 22 && len(data) > 0 && data[0] == 24:
			s.sawKeyUpdate = true
			s.in.update()
		case typ == 23:
			s.pending = data
		default:
			s.err = fmt.Errorf("a record of type %d: %x", typ, data)
			return 0, s.err
		}
	}
	n := copy(b, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

func (s *recordStream) Write(b []byte) (int, error) {
	_, err := s.raw.Write(s.out.seal(23, b))
	return len(b), err
}

// TestTLSPartialRecordBetweenRequests: a client that sends the start of a TLS record
// after a response (in the same segment as its request, or within the short wait for the
// next request) and stalls is closed after read_header_timeout, as one that stalls in a
// request head is. crypto/tls read those bytes and returned nothing, so the short wait took
// the connection for idle and waited on the socket for the rest of the record: until the
// idle timeout (a minute here, 60 s by default, against read_header_timeout's 10 s).
func TestTLSPartialRecordBetweenRequests(t *testing.T) {
	ca := testutil.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := Settings{Name: "t", ReadHeaderTimeout: 300 * time.Millisecond, ReadTimeout: time.Minute, WriteTimeout: time.Minute,
		IdleTimeout: time.Minute, HandshakeTimeout: 5 * time.Second, Limits: h1.Limits{MaxHeaderBytes: 65536, MaxHeaders: 100},
		TLS: ca.ServerConfig(t, "srv.test")}
	srv := serveOK(t, ln, st)
	for _, when := range []string{"with the request", "after the response", "after an idle wait"} {
		t.Run(when, func(t *testing.T) {
			c := dialTLS13Records(t, ca, ln.Addr().String())
			first := c.out.seal(23, []byte("GET /1 HTTP/1.1\r\nHost: srv.test\r\n\r\n"))
			next := c.out.seal(23, []byte("GET /2 HTTP/1.1\r\nHost: srv.test\r\n\r\n"))[:10]
			if when == "with the request" {
				c.raw.Write(append(first, next...))
				c.response(t)
			} else {
				c.raw.Write(first)
				c.response(t)
				if when == "after an idle wait" {
					time.Sleep(200 * time.Millisecond)
				}
				c.raw.Write(next)
			}
			start := time.Now()
			c.raw.SetReadDeadline(start.Add(20 * time.Second))
			if _, err := io.Copy(io.Discard, c.raw); err != nil {
				t.Fatalf("the connection stayed open %v with a partial record: %v", time.Since(start), err)
			}
			testutil.WaitFor(t, 5*time.Second, "the connection gone", func() bool { return srv.Active() == 0 })
		})
	}
}

// tls13Records is a TLS 1.3 connection whose handshake crypto/tls made and whose records
// the test then writes and reads itself (with the traffic secrets from the key log), so
// that it can send what crypto/tls's client cannot: a KeyUpdate.
type tls13Records struct {
	raw          net.Conn
	in, out      *trafficKeys
	sawKeyUpdate bool
}

func dialTLS13Records(t *testing.T, ca *testutil.CA, addr string, alpn ...string) *tls13Records {
	t.Helper()
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	raw.SetDeadline(time.Now().Add(10 * time.Second))
	var keylog bytes.Buffer
	cfg := ca.ClientConfig("srv.test")
	cfg.MinVersion = tls.VersionTLS13
	cfg.NextProtos = alpn
	cfg.KeyLogWriter = &keylog // no session cache: no ticket comes after the handshake
	tc := tls.Client(raw, cfg)
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	var h func() hash.Hash
	var keyLen int
	switch tc.ConnectionState().CipherSuite {
	case tls.TLS_AES_128_GCM_SHA256:
		h, keyLen = sha256.New, 16
	case tls.TLS_AES_256_GCM_SHA384:
		h, keyLen = sha512.New384, 32
	default:
		t.Skipf("cipher suite %s: the test speaks AES-GCM only", tls.CipherSuiteName(tc.ConnectionState().CipherSuite))
	}
	c := &tls13Records{raw: raw}
	for line := range strings.SplitSeq(keylog.String(), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			continue
		}
		secret, _ := hex.DecodeString(f[2])
		switch f[0] {
		case "CLIENT_TRAFFIC_SECRET_0":
			c.out = newTrafficKeys(t, h, keyLen, secret)
		case "SERVER_TRAFFIC_SECRET_0":
			c.in = newTrafficKeys(t, h, keyLen, secret)
		}
	}
	if c.in == nil || c.out == nil {
		t.Fatalf("no traffic secrets in the key log: %q", keylog.String())
	}
	return c
}

// request sends GET path and reads records until okHandler's answer, following the
// server's key updates.
func (c *tls13Records) request(t *testing.T, path string) {
	t.Helper()
	c.write(t, 23, fmt.Appendf(nil, "GET %s HTTP/1.1\r\nHost: srv.test\r\n\r\n", path))
	c.response(t)
}

// response reads records until okHandler's answer, following the server's key updates.
func (c *tls13Records) response(t *testing.T) {
	t.Helper()
	var got []byte
	for !bytes.HasSuffix(got, []byte("\r\n\r\nok")) {
		typ, data, err := c.in.open(c.raw)
		switch {
		case err != nil:
			t.Fatalf("after %q: %v", got, err)
		case typ == 22 && len(data) > 0 && data[0] == 24:
			c.sawKeyUpdate = true
			c.in.update()
		case typ == 23:
			got = append(got, data...)
		default:
			t.Fatalf("after %q: a record of type %d: %x", got, typ, data)
		}
	}
}

func (c *tls13Records) write(t *testing.T, typ byte, data []byte) {
	t.Helper()
	if _, err := c.raw.Write(c.out.seal(typ, data)); err != nil {
		t.Fatal(err)
	}
}

// trafficKeys is one direction's record protection (RFC 8446 section 7).
type trafficKeys struct {
	t      *testing.T
	hash   func() hash.Hash
	keyLen int
	secret []byte
	aead   cipher.AEAD
	iv     []byte
	seq    uint64
}

func newTrafficKeys(t *testing.T, h func() hash.Hash, keyLen int, secret []byte) *trafficKeys {
	k := &trafficKeys{t: t, hash: h, keyLen: keyLen}
	k.set(secret)
	return k
}

func (k *trafficKeys) set(secret []byte) {
	block, err := aes.NewCipher(k.expand(secret, "key", k.keyLen))
	if err != nil {
		k.t.Fatal(err)
	}
	if k.aead, err = cipher.NewGCM(block); err != nil {
		k.t.Fatal(err)
	}
	k.secret, k.iv, k.seq = secret, k.expand(secret, "iv", 12), 0
}

// update moves to the next traffic secret, as a KeyUpdate does (RFC 8446 section 7.2).
func (k *trafficKeys) update() { k.set(k.expand(k.secret, "traffic upd", k.hash().Size())) }

// expand is HKDF-Expand-Label with an empty context.
func (k *trafficKeys) expand(secret []byte, label string, n int) []byte {
	label = "tls13 " + label
	info := append([]byte{byte(n >> 8), byte(n), byte(len(label))}, label...)
	out, err := hkdf.Expand(k.hash, secret, string(append(info, 0)), n)
	if err != nil {
		k.t.Fatal(err)
	}
	return out
}

func (k *trafficKeys) nonce() []byte {
	n := bytes.Clone(k.iv)
	for i := range 8 {
		n[4+i] ^= byte(k.seq >> (56 - 8*i))
	}
	k.seq++
	return n
}

func (k *trafficKeys) seal(typ byte, data []byte) []byte {
	inner := append(bytes.Clone(data), typ)
	n := len(inner) + k.aead.Overhead()
	hdr := []byte{23, 3, 3, byte(n >> 8), byte(n)}
	return k.aead.Seal(hdr, k.nonce(), inner, hdr)
}

func (k *trafficKeys) open(r io.Reader) (typ byte, data []byte, err error) {
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(r, hdr); err != nil {
		return 0, nil, err
	}
	body := make([]byte, int(hdr[3])<<8|int(hdr[4]))
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, nil, err
	}
	inner, err := k.aead.Open(nil, k.nonce(), body, hdr)
	if err != nil {
		return 0, nil, fmt.Errorf("record %x...: %w", hdr, err)
	}
	inner = bytes.TrimRight(inner, "\x00")
	if len(inner) == 0 {
		return 0, nil, fmt.Errorf("an empty record")
	}
	return inner[len(inner)-1], inner[:len(inner)-1], nil
}

// TestTLSOwnWriteTimeoutStands: tlsSocket retries only crypto/tls's own writes: a write of
// the connection's (tlsConn.Write) whose deadline has passed fails, as write_timeout says.
func TestTLSOwnWriteTimeoutStands(t *testing.T) {
	ca := testutil.NewCA(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		tc := tls.Client(c, ca.ClientConfig("srv.test"))
		tc.Handshake()
		io.Copy(io.Discard, tc)
	}()
	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	raw := netio.Wrap(nc)
	sock := &tlsSocket{Conn: raw}
	tc := tls.Server(sock, ca.ServerConfig(t, "srv.test"))
	tc.SetDeadline(time.Now().Add(10 * time.Second))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	sock.wto = time.Minute
	c := &tlsConn{Conn: tc, raw: raw, sock: sock}
	defer c.Close()
	c.SetWriteDeadline(time.Now().Add(-time.Second))
	if _, err := c.Write([]byte("late")); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a write past its deadline: %v, want a timeout", err)
	}
}
