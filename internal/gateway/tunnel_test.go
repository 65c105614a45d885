package gateway

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sluice/internal/testutil"
)

// wsBackend is a WebSocket echo server. closes receives the close status each connection
// got from its peer (the gateway, on behalf of the client or itself).
type wsBackend struct {
	*httptest.Server
	upgrades atomic.Int64
	closes   chan websocket.StatusCode
}

func newWSBackend(t *testing.T) *wsBackend {
	t.Helper()
	b := &wsBackend{closes: make(chan websocket.StatusCode, 16)}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Counted before Accept writes the 101: a client that has its 101 finds its
		// upgrade counted (after it, a test that looked at once raced the handler).
		if strings.EqualFold(r.Header.Get("Upgrade"), "websocket") {
			b.upgrades.Add(1)
		}
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.SetReadLimit(1 << 20)
		defer c.CloseNow()
		for {
			typ, msg, err := c.Read(context.Background())
			if err != nil {
				b.closes <- websocket.CloseStatus(err)
				return
			}
			if err := c.Write(context.Background(), typ, msg); err != nil {
				return
			}
		}
	}))
	t.Cleanup(b.Close)
	return b
}

// wsGateway starts a gateway with a /ws route to be and a catch-all to it; tunnel is the /ws
// route's tunnel block (YAML flow mapping, or "").
func wsGateway(t *testing.T, be *wsBackend, tunnel, extra string) *testGateway {
	t.Helper()
	if tunnel != "" {
		tunnel = ", tunnel: " + tunnel
	}
	return startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: ws, targets: [{address: {{b}}}]}]
routes:
  - {id: ws, match: {path_prefix: /ws}, upstream: ws`+tunnel+`}
`+extra, map[string]string{"b": hostport(be.Server)})
}

func dialWS(t *testing.T, tg *testGateway, path string) *websocket.Conn {
	t.Helper()
	return dialWSHeader(t, tg, path, nil)
}

// dialWSHeader is dialWS with extra handshake fields.
func dialWSHeader(t *testing.T, tg *testGateway, path string, h http.Header) *websocket.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+tg.addr+path, &websocket.DialOptions{HTTPHeader: h})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (status %d)", path, err, status)
	}
	t.Cleanup(func() { c.CloseNow() })
	return c
}

func echo(t *testing.T, c *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	_, got, err := c.Read(ctx)
	if err != nil || string(got) != msg {
		t.Fatalf("echo of %d bytes: got %d bytes (equal: %v), %v", len(msg), len(got), string(got) == msg, err)
	}
}

// TestWebSocketThroughTheGateway: a WebSocket handshake gets its 101, messages flow both
// ways (small and large), the tunnel is visible while open (admin, metrics) and logged when
// it closes; its upstream connection never goes back to the pool.
func TestWebSocketThroughTheGateway(t *testing.T) {
	be := newWSBackend(t)
	tg := wsGateway(t, be, "", "")
	c := dialWS(t, tg, "/ws/chat")
	c.SetReadLimit(1 << 20)
	echo(t, c, "hello")
	echo(t, c, strings.Repeat("x", 300<<10)) // frames larger than the copy buffer
	if ts := tg.gw.proxy.Tunnels(); len(ts) != 1 || ts[0].Route != "ws" || ts[0].Protocol != "websocket" || ts[0].BytesUp < 300<<10 {
		t.Fatalf("open tunnels: %+v", ts)
	}
	if v, _ := gathered(t, tg).value("sluice_tunnels_open", map[string]string{"route": "ws", "protocol": "websocket"}); v != 1 {
		t.Errorf("sluice_tunnels_open = %v, want 1", v)
	}
	c.Close(websocket.StatusNormalClosure, "bye")
	if st := <-be.closes; st != websocket.StatusNormalClosure {
		t.Errorf("backend saw close status %v, want 1000", st)
	}
	l := tg.accessLines(1)[0]
	if l["status"] != float64(101) || l["tunnel"] != "websocket" || l["tunnel_bytes_up"].(float64) < 300<<10 || l["tunnel_closed"] == "" {
		t.Errorf("access log: %v", l)
	}
	testutil.WaitFor(t, 5*time.Second, "the tunnel to be counted closed", func() bool {
		v, _ := gathered(t, tg).value("sluice_tunnels_open", map[string]string{"route": "ws", "protocol": "websocket"})
		return v == 0
	})
	s := tg.gw.Current().Upstreams["ws"].Current().Targets[0].Pool.Snapshot()
	if len(s.Conns) != 0 || s.Counters.Reused != 0 {
		t.Errorf("pool after the tunnel: conns %+v, counters %+v: the upgraded connection must not be pooled", s.Conns, s.Counters)
	}
	if n := s.Counters.ClosedBy["upgraded"]; n != 1 {
		t.Errorf("closed by upgraded = %d, want 1 (%v)", n, s.Counters.ClosedBy)
	}
}

// TestUpgradesARouteDoesNotAllow: a route without the protocol forwards the request as a
// plain one (the backend sees no Upgrade and refuses the handshake); h2c is never
// forwarded, whatever the client asks.
func TestUpgradesARouteDoesNotAllow(t *testing.T) {
	be := newWSBackend(t)
	tg := wsGateway(t, be, "{protocols: []}", "")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, "ws://"+tg.addr+"/ws", nil)
	if err == nil || resp == nil || resp.StatusCode == 101 {
		t.Fatalf("upgrade on a route without websocket: err %v, resp %v", err, resp)
	}
	if be.upgrades.Load() != 0 {
		t.Fatal("the backend upgraded")
	}

	seen := make(chan string, 1)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.Header.Get("Upgrade") + "|" + r.Header.Get("Connection")
	}))
	defer plain.Close()
	tg2 := upstreamGateway(t, hostport(plain))
	out := rawExchange(t, tg2.addr, "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n", 3*time.Second)
	if got := <-seen; got != "|" {
		t.Errorf("backend saw Upgrade|Connection = %q, want neither", got)
	}
	if !strings.HasPrefix(out, "HTTP/1.1 200") {
		t.Errorf("h2c upgrade request: %q, want a plain 200", out)
	}
}

// TestTunnelIdleTimeout: a tunnel with no byte either way for idle_timeout is closed, with
// a WebSocket Close 1001 (going away) to both sides.
func TestTunnelIdleTimeout(t *testing.T) {
	be := newWSBackend(t)
	tg := wsGateway(t, be, "{idle_timeout: 300ms}", "")
	c := dialWS(t, tg, "/ws")
	echo(t, c, "one")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	_, _, err := c.Read(ctx)
	if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
		t.Fatalf("client read: %v (status %v), want a 1001 close", err, st)
	}
	if d := time.Since(start); d < 250*time.Millisecond || d > 3*time.Second {
		t.Errorf("closed after %v idle, want ~300ms", d)
	}
	if st := <-be.closes; st != websocket.StatusGoingAway {
		t.Errorf("backend saw %v, want 1001", st)
	}
	if l := tg.accessLines(1)[0]; l["tunnel_closed"] != "idle_timeout" {
		t.Errorf("tunnel_closed = %v", l["tunnel_closed"])
	}
}

// TestTunnelShutdown: tunnels get the shutdown grace, then both sides get a Close 1001 and
// Shutdown returns.
func TestTunnelShutdown(t *testing.T) {
	be := newWSBackend(t)
	tg := wsGateway(t, be, "", "")
	c := dialWS(t, tg, "/ws")
	echo(t, c, "before")
	readErr := make(chan error, 1)
	go func() { _, _, err := c.Read(context.Background()); readErr <- err }()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	tg.gw.Shutdown(ctx)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("Shutdown with an open tunnel took %v with a 300ms grace", d)
	}
	if st := websocket.CloseStatus(<-readErr); st != websocket.StatusGoingAway {
		t.Errorf("client got close status %v, want 1001", st)
	}
	if st := <-be.closes; st != websocket.StatusGoingAway {
		t.Errorf("backend got close status %v, want 1001", st)
	}
}

// TestTunnelRouteChangedByReload: after a reload, a tunnel whose route changed is closed
// once the grace passes (1001); one whose route is unchanged stays open.
func TestTunnelRouteChangedByReload(t *testing.T) {
	be := newWSBackend(t)
	const cfg = `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: ws, targets: [{address: {{b}}}]}]
routes:
  - {id: keep, match: {path_prefix: /keep}, upstream: ws}
  - {id: change, match: {path_prefix: /change}, upstream: ws, tunnel: {idle_timeout: %s}}
shutdown_grace: 200ms
`
	vars := map[string]string{"b": hostport(be.Server)}
	tg := startGateway(t, strings.Replace(cfg, "%s", "1h", 1), vars)
	keep, change := dialWS(t, tg, "/keep"), dialWS(t, tg, "/change")
	echo(t, keep, "k")
	echo(t, change, "c")
	if err := tg.gw.Apply(mustParse(t, strings.Replace(cfg, "%s", "2h", 1), vars)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _, err := change.Read(ctx)
	if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
		t.Fatalf("changed route's tunnel: %v, want a 1001 close", err)
	}
	echo(t, keep, "still here")
}

// TestUpgradeNeverRetried: an upgrade request the backend read and then dropped is answered
// 502, not sent again: a handshake may have opened a session.
func TestUpgradeNeverRetried(t *testing.T) {
	var got atomic.Int64
	addr := serveConns(t, func(c net.Conn) {
		if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
			got.Add(1)
			c.(*net.TCPConn).SetLinger(0) // reset, no answer
		}
	})
	tg := upstreamGateway(t, addr)
	out := rawExchange(t, tg.addr, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 3*time.Second)
	if !strings.HasPrefix(out, "HTTP/1.1 502") || got.Load() != 1 {
		t.Fatalf("got %q after the backend saw it %d times; want 502 after once", firstLine(out), got.Load())
	}
}

// TestTunnelHalfClose: a generic upgraded protocol allowed by name: the client sends, then
// half-closes; the backend reads to the end, answers and closes; the client reads it all.
func TestTunnelHalfClose(t *testing.T) {
	addr := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo-proto\r\n\r\n")
		in, _ := io.ReadAll(br) // until the client's half-close
		io.WriteString(c, "got:"+string(in))
	})
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b, tunnel: {protocols: [echo-proto]}}]
`, map[string]string{"b": addr})
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: Echo-Proto\r\n\r\nearly bytes;")
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 || resp.Header.Get("Upgrade") != "echo-proto" {
		t.Fatalf("handshake: %v %+v", err, resp)
	}
	io.WriteString(c, "later bytes")
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(br)
	if err != nil && !errors.Is(err, io.EOF) || string(rest) != "got:early bytes;later bytes" {
		t.Fatalf("read %q, %v", rest, err)
	}
}

// TestTunnelHalfClosedThenIdle: a generic tunnel whose client half-closed while the backend
// keeps its side open and quiet ends by the idle timeout, and says so: the half-close ended
// one direction, not the tunnel.
func TestTunnelHalfClosedThenIdle(t *testing.T) {
	hold := make(chan struct{})
	defer close(hold)
	addr := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: echo-proto\r\n\r\n")
		io.Copy(io.Discard, br) // until the client's half-close
		<-hold                  // its own side stays open, and quiet
	})
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b, tunnel: {protocols: [echo-proto], idle_timeout: 300ms}}]
`, map[string]string{"b": addr})
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: echo-proto\r\n\r\n")
	br := bufio.NewReader(c)
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %+v", err, resp)
	}
	c.(*net.TCPConn).CloseWrite()
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadAll(br); err != nil {
		t.Fatalf("client read: %v, want the gateway's close after the idle timeout", err)
	}
	if l := tg.accessLines(1)[0]; l["tunnel_closed"] != "idle_timeout" {
		t.Errorf("tunnel_closed = %v, want idle_timeout (the client only half-closed)", l["tunnel_closed"])
	}
}

// TestWebSocketOverTLS: wss:// through a TLS listener.
func TestWebSocketOverTLS(t *testing.T) {
	be := newWSBackend(t)
	ca := testutil.NewCA(t)
	cert, key := ca.Issue(t, "ws", testutil.CertOptions{DNSNames: []string{"ws.test"}})
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0, tls: {certificates: [{cert_file: {{c}}, key_file: {{k}}}]}}]
upstreams: [{id: ws, targets: [{address: {{b}}}]}]
routes: [{id: ws, upstream: ws}]
`, map[string]string{"b": hostport(be.Server), "c": cert, "k": key})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: ca.ClientConfig("ws.test")}}
	c, _, err := websocket.Dial(ctx, "wss://"+tg.addr+"/ws", &websocket.DialOptions{HTTPClient: hc})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	echo(t, c, "over tls")
	echo(t, c, strings.Repeat("y", 100<<10))
	c.Close(websocket.StatusNormalClosure, "")
	if st := <-be.closes; st != websocket.StatusNormalClosure {
		t.Errorf("backend saw %v", st)
	}
	if l := tg.accessLines(1)[0]; l["tunnel"] != "websocket" || l["tls_version"] == nil {
		t.Errorf("access log: %v", l)
	}
}

// TestTunnelClosedBy: the access log's tunnel_closed names the side that closed first, also
// when the other side then closes in answer (as every WebSocket peer does after its Close
// frame): a client that leaves first is client_closed, a backend that leaves first
// upstream_closed, also when the client sends on after it and the write to the closed
// backend fails.
func TestTunnelClosedBy(t *testing.T) {
	for _, tc := range []struct {
		name, first, want string
		sendOn            bool // the client writes frames after the backend's close
	}{
		{name: "client first", first: "client", want: "client_closed"},
		{name: "backend first", first: "backend", want: "upstream_closed"},
		{name: "backend first, client sends on", first: "backend", sendOn: true, want: "upstream_closed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := rawWSBackend(t, func(_ net.Conn, br *bufio.Reader) {
				if tc.first == "client" {
					io.Copy(io.Discard, br) // until the client's close reaches here, then close
				}
			})
			tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: ws, targets: [{address: {{b}}}]}]
routes: [{id: ws, upstream: ws}]
`, map[string]string{"b": addr})
			c, br := rawWebSocket(t, tg)
			if tc.first == "client" {
				c.Close()
			} else {
				c.SetReadDeadline(time.Now().Add(5 * time.Second))
				io.Copy(io.Discard, br) // until the backend's close reaches here
				// Sending on: the first frame reaches the closed backend (which resets),
				// a later one fails there, and the tunnel closes on the client.
				frame := []byte{0x82, 0x81, 0, 0, 0, 0, 'x'}
				for deadline := time.Now().Add(5 * time.Second); tc.sendOn && time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
					if _, err := c.Write(frame); err != nil {
						break
					}
				}
				c.Close()
			}
			if l := tg.accessLines(1)[0]; l["tunnel_closed"] != tc.want {
				t.Errorf("tunnel_closed = %v, want %s", l["tunnel_closed"], tc.want)
			}
		})
	}
}
