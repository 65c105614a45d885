package server

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/http2"

	"sluice/internal/h1"
	"sluice/internal/testutil"
)

// refuseHandler answers 413 without reading the body and closes after it, as a gateway
// refusal does (request_body_too_large on Content-Length, 417, a rejected route); other
// requests get okHandler's answer.
type refuseHandler struct{}

func (refuseHandler) ServeH1(ex *Exchange) {
	if string(ex.Req.Path) != "/refuse" {
		okHandler{}.ServeH1(ex)
		return
	}
	ex.CloseAfter()
	var h h1.Header
	ex.WriteHead(413, nil, &h, 9)
	ex.Write([]byte("too large"))
}

// lingerServer serves refuseHandler on a new listener, under TLS when secure, and returns
// its address and a client config (nil for plain TCP).
func lingerServer(t *testing.T, secure bool) (string, *tls.Config) {
	t.Helper()
	return lingerServerWith(t, secure, refuseHandler{}, UnderscoresDrop)
}

// dialLinger connects to a lingerServer at addr, over TLS with cc when it is not nil; the
// connection closes when the test ends.
func dialLinger(t *testing.T, addr string, cc *tls.Config) net.Conn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if cc != nil {
		return tls.Client(nc, cc)
	}
	return nc
}

// lingerServerWith is lingerServer with handler h and the listener's policy for header
// field names with "_".
func lingerServerWith(t *testing.T, secure bool, h Handler, underscores Underscores) (string, *tls.Config) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	st := Settings{Name: "t", ReadHeaderTimeout: 30 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second,
		IdleTimeout: 30 * time.Second, HandshakeTimeout: 30 * time.Second, Limits: h1.Limits{MaxHeaderBytes: 65536, MaxHeaders: 100},
		Underscores: underscores}
	var cc *tls.Config
	if secure {
		ca := testutil.NewCA(t)
		st.TLS = ca.ServerConfig(t, "srv.test")
		cc = ca.ClientConfig("srv.test")
	}
	serveUntilEnd(t, ln, st, h)
	return ln.Addr().String(), cc
}

// TestRefusedRequestAnswerReachesSendingClient: a Go client still writing its request when
// the server refuses it (a 1 MiB header field: 431 from the parser; a 16 MiB body after a
// head the handler refuses without reading it: 413) gets the answer, every time, over TCP
// and TLS. The server closes with a lingering close (lingerClose): closing with the
// client's bytes unread would reset the connection, and the client's write would meet the
// reset before it read the answer (`write: broken pipe`, `connection reset by peer`).
func TestRefusedRequestAnswerReachesSendingClient(t *testing.T) {
	const tries = 20
	big := strings.Repeat("a", 1<<20)
	body := make([]byte, 16<<20)
	cases := []struct {
		name   string
		path   string
		header string // a field value added to the request
		body   []byte
		status int
	}{
		{name: "header too large", path: "/", header: big, status: 431},
		{name: "body refused", path: "/refuse", body: body, status: 413},
	}
	for _, secure := range []bool{false, true} {
		addr, cc := lingerServer(t, secure)
		scheme := "http"
		if secure {
			scheme = "https"
		}
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true, TLSClientConfig: cc}}
		for _, tc := range cases {
			t.Run(scheme+"/"+tc.name, func(t *testing.T) {
				testutil.WantStatusEachTry(t, tries, tc.status, func() (*http.Response, error) {
					req, _ := http.NewRequest("PUT", scheme+"://"+addr+tc.path, bytes.NewReader(tc.body))
					if tc.header != "" {
						req.Header.Set("X-Big", tc.header)
					}
					return client.Do(req)
				})
			})
		}
	}
}

// TestLingerBounded: a client that never stops sending after its request was refused is cut
// at the lingering close's bounds: one sending at full speed once lingerMaxBytes are read
// (plus what the sockets' buffers hold), a slow one at lingerTime. Either way the
// connection does not stay open past them: the server's own timeouts (30 s) are beyond the
// test's wait (15 s).
func TestLingerBounded(t *testing.T) {
	for _, secure := range []bool{false, true} {
		addr, cc := lingerServer(t, secure)
		for _, fast := range []bool{true, false} {
			name := map[bool]string{false: "tcp", true: "tls"}[secure] + map[bool]string{true: "/fast", false: "/slow"}[fast]
			t.Run(name, func(t *testing.T) {
				c := dialLinger(t, addr, cc)
				// A request-line the parser refuses (505), then bytes for ever.
				if _, err := io.WriteString(c, "GET / HTTP/1.7\r\nHost: h\r\n\r\n"); err != nil {
					t.Fatal(err)
				}
				size, pause := 64<<10, time.Duration(0)
				if !fast {
					size, pause = 100, 20*time.Millisecond
				}
				sent, took := sendUntilCut(t, c, size, pause)
				// The sockets' buffers take up to a few MiB each way on loopback.
				if fast && sent > lingerMaxBytes+32<<20 {
					t.Errorf("sent %d bytes before the cut, want about lingerMaxBytes (%d)", sent, lingerMaxBytes)
				}
				if !fast && took < lingerTime/2 {
					t.Errorf("cut after %v, before lingerTime (%v): the linger ended early", took, lingerTime)
				}
			})
		}
	}
}

// TestH2GoAwayLingers: an HTTP/2 client that goes on sending after its connection error (a
// DATA frame on stream 0, then 16 MiB more, all written before it reads) writes all of it
// and then reads the GOAWAY, and the connection ends with a FIN once it closes its side:
// after the last GOAWAY the server shuts its sending side and drops what still comes
// (h2Own.serve). A close with those bytes unread would reset the connection under the
// client's writes.
func TestH2GoAwayLingers(t *testing.T) {
	addr := startH2C(t, bodyHandler{})
	for range 5 {
		r := dialRaw(t, addr)
		r.c.SetDeadline(time.Now().Add(20 * time.Second))
		r.fr.AllowIllegalWrites = true
		if err := r.fr.WriteData(0, false, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if _, err := r.c.Write(make([]byte, 16<<20)); err != nil {
			t.Fatalf("the client's writes after its connection error: %v", err)
		}
		for {
			f, err := r.fr.ReadFrame()
			if err != nil {
				t.Fatalf("reading up to the GOAWAY: %v", err)
			}
			if ga, ok := f.(*http2.GoAwayFrame); ok {
				if ga.ErrCode != http2.ErrCodeProtocol {
					t.Errorf("GOAWAY %v, want PROTOCOL_ERROR", ga.ErrCode)
				}
				break
			}
		}
		r.c.(*net.TCPConn).CloseWrite()
		if _, err := io.Copy(io.Discard, r.c); err != nil {
			t.Errorf("after the GOAWAY: %v, want the server's FIN", err)
		}
		r.c.Close()
	}
}

// sendUntilCut writes size bytes at a time to c, pausing between writes, until a write
// fails (it must, within 15 s, and not on a timeout); it returns the bytes written and how
// long it took.
func sendUntilCut(t *testing.T, c net.Conn, size int, pause time.Duration) (int64, time.Duration) {
	t.Helper()
	start := time.Now()
	chunk := make([]byte, size)
	var sent int64
	var err error
	for err == nil && time.Since(start) < 15*time.Second {
		var n int
		n, err = c.Write(chunk)
		sent += int64(n)
		time.Sleep(pause)
	}
	took := time.Since(start)
	if err == nil {
		t.Fatalf("still sending after %v (%d bytes): the linger did not end", took, sent)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("write: %v", err)
	}
	t.Logf("cut after %v and %d bytes: %v", took, sent, err)
	return sent, took
}

// TestH2GoAwayLingerBounded: an HTTP/2 client that never stops sending after its
// connection error is cut once lingerMaxBytes are read (plus the sockets' buffers).
func TestH2GoAwayLingerBounded(t *testing.T) {
	addr := startH2C(t, bodyHandler{})
	r := dialRaw(t, addr)
	r.fr.AllowIllegalWrites = true
	if err := r.fr.WriteData(0, false, []byte("x")); err != nil {
		t.Fatal(err)
	}
	if sent, _ := sendUntilCut(t, r.c, 64<<10, 0); sent > lingerMaxBytes+32<<20 {
		t.Errorf("sent %d bytes before the cut, want about lingerMaxBytes (%d)", sent, lingerMaxBytes)
	}
}

// TestRefusedWholeHeadClosesAtOnce: a request refused after its head was read whole (a
// header field name with "_" on a listener that rejects them: 400) whose request has no body
// and nothing behind it leaves the client nothing more to send: the connection closes at
// once after the answer, with no lingering close (a client's byte sent after the answer
// meets a reset within moments, not after lingerTime). One with a body, or with another
// request behind it, still lingers: the client may still be sending. Over TCP and TLS.
func TestRefusedWholeHeadClosesAtOnce(t *testing.T) {
	cases := []struct {
		name    string
		request string
		lingers bool
	}{
		{name: "bodiless", request: "GET / HTTP/1.1\r\nHost: h\r\nX_Bad: 1\r\n\r\n"},
		// Pipelined, read with the first.
		{name: "request behind", request: "GET / HTTP/1.1\r\nHost: h\r\nX_Bad: 1\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n", lingers: true},
		// The body not sent yet.
		{name: "with body", request: "POST / HTTP/1.1\r\nHost: h\r\nX_Bad: 1\r\nContent-Length: 10\r\n\r\n", lingers: true},
	}
	for _, secure := range []bool{false, true} {
		addr, cc := lingerServerWith(t, secure, okHandler{}, UnderscoresReject)
		for _, tc := range cases {
			t.Run(map[bool]string{false: "tcp", true: "tls"}[secure]+"/"+tc.name, func(t *testing.T) {
				c := dialLinger(t, addr, cc)
				c.SetDeadline(time.Now().Add(30 * time.Second))
				if _, err := io.WriteString(c, tc.request); err != nil {
					t.Fatal(err)
				}
				answer, err := io.ReadAll(c) // to the server's FIN (TLS: close_notify)
				if err != nil || !bytes.HasPrefix(answer, []byte("HTTP/1.1 400 ")) || !bytes.Contains(answer, []byte("underscore_in_header")) {
					t.Fatalf("answer %q, %v; want a 400 underscore_in_header", answer, err)
				}
				// Closed at once: the reset comes in a round trip (a generous bound of half
				// lingerTime); lingering: only after lingerTime.
				_, took := sendUntilCut(t, c, 100, 20*time.Millisecond)
				if !tc.lingers && took >= lingerTime/2 {
					t.Errorf("cut %v after the answer: the connection lingered (lingerTime %v)", took, lingerTime)
				}
				if tc.lingers && took < lingerTime/2 {
					t.Errorf("cut %v after the answer, before lingerTime (%v): a refused request the client may still be sending must linger", took, lingerTime)
				}
			})
		}
	}
}

// TestH2LingerDeadlineStands: once the writer sent the last GOAWAY and bounded the linger's
// reads by h2Linger (shutWrite), a later read deadline does not replace it. serve sets its
// longer bound (h2Linger + write_timeout) after it saw the writer not yet done, and the writer
// may finish in between (a few instructions: the two calls are made here in that order).
func TestH2LingerDeadlineStands(t *testing.T) {
	srv, cl := net.Pipe()
	defer cl.Close()
	defer srv.Close()
	o := &h2Own{nc: srv}
	o.shutWrite()
	o.setReadDeadline(time.Now().Add(time.Hour)) // serve's bound, come late
	done := make(chan error, 1)
	go func() {
		_, err := srv.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		var ne net.Error
		if !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("the linger's read: %v, want its deadline", err)
		}
	case <-time.After(h2Linger + 10*time.Second):
		t.Fatalf("the linger's read outlived h2Linger (%v): serve's later bound replaced the writer's", h2Linger)
	}
}
