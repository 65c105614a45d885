package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sluice/internal/testutil"
	"sluice/internal/upstream/balancer"
)

const wsHandshake = "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"

// wsSwitch is a backend's 101 to wsHandshake: its Sec-WebSocket-Accept answers that key.
const wsSwitch = "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"

// rawWebSocket opens a raw connection to tg, sends wsHandshake and reads the 101, and
// returns the connection (closed when the test ends) and its reader.
func rawWebSocket(t *testing.T, tg *testGateway) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp", tg.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	io.WriteString(c, wsHandshake)
	br := bufio.NewReader(c)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if resp, err := http.ReadResponse(br, nil); err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	c.SetReadDeadline(time.Time{})
	return c, br
}

// rawWSBackend serves raw WebSocket upgrades: it reads the handshake, answers wsSwitch, and
// hands the connection and its reader to then.
func rawWSBackend(t *testing.T, then func(c net.Conn, br *bufio.Reader)) string {
	return serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		if _, err := http.ReadRequest(br); err != nil {
			return
		}
		io.WriteString(c, wsSwitch)
		then(c, br)
	})
}

// floodBackend answers a WebSocket handshake with 101 and then writes 4 KiB binary frames
// until the connection fails; written counts the bytes.
func floodBackend(t *testing.T, written *atomic.Int64) string {
	return rawWSBackend(t, func(c net.Conn, _ *bufio.Reader) {
		frame := append([]byte{0x82, 126, 0x10, 0x00}, make([]byte, 4096)...)
		for {
			n, err := c.Write(frame)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	})
}

// stalledTunnel opens a WebSocket tunnel through tg to a flooding backend and stops reading,
// so that the gateway's upstream-to-client copier blocks in a write to the client. It returns
// once the backend has been unable to write more for a while.
func stalledTunnel(t *testing.T, tg *testGateway, written *atomic.Int64) net.Conn {
	t.Helper()
	c, _ := rawWebSocket(t, tg) // closed before the gateway's Shutdown: releases a stuck copier
	last, since := int64(-1), time.Now()
	testutil.WaitFor(t, 20*time.Second, "the backend's writes to stall", func() bool {
		if n := written.Load(); n != last {
			last, since = n, time.Now()
			return false
		}
		return time.Since(since) > 300*time.Millisecond
	})
	return c
}

// TestTunnelStopWithAClientThatDoesNotRead: a stop (shutdown grace over, route changed,
// max_lifetime) ends a WebSocket tunnel whose client stopped reading, although its copier is
// blocked writing to that client: the stop does not wait for the copier (whose write may
// block for the tunnel's write timeout, an hour by default) to put a Close frame between
// frames, the stops of several such tunnels wait side by side, and no goroutine is left.
func TestTunnelStopWithAClientThatDoesNotRead(t *testing.T) {
	t.Cleanup(func() { // after the subtests' gateways shut down
		if s := testutil.Leaked(5*time.Second, func(g string) bool { return strings.Contains(g, "proxy.(*tunnel)") }); s != "" {
			t.Errorf("tunnel goroutines left:\n%s", s)
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		const stalled = 5
		var written atomic.Int64
		tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: ws, targets: [{address: {{b}}}]}]
routes: [{id: ws, upstream: ws}]
`, map[string]string{"b": floodBackend(t, &written)})
		for range stalled {
			stalledTunnel(t, tg, &written)
		}
		start := time.Now()
		done := make(chan struct{})
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			tg.gw.Shutdown(ctx)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			t.Fatal("Shutdown did not return: the tunnel's stop waits for a blocked copier")
		}
		// Each stalled tunnel's stop waits up to a second for its Close frames; they wait
		// side by side, not one after the other.
		if d := time.Since(start); d > time.Duration(stalled-1)*time.Second {
			t.Errorf("Shutdown with %d stalled tunnels took %v: their stops ran one by one", stalled, d)
		}
		for _, l := range tg.accessLines(stalled) {
			if l["tunnel_closed"] != "shutdown" {
				t.Errorf("tunnel_closed = %v, want shutdown", l["tunnel_closed"])
			}
		}
	})
	t.Run("route_changed", func(t *testing.T) {
		const stalled = 5
		var written atomic.Int64
		const cfg = `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: ws, targets: [{address: {{b}}}]}]
routes: [{id: ws, upstream: ws, tunnel: {idle_timeout: %s}}]
shutdown_grace: 100ms
`
		vars := map[string]string{"b": floodBackend(t, &written)}
		tg := startGateway(t, strings.Replace(cfg, "%s", "1h", 1), vars)
		for range stalled {
			stalledTunnel(t, tg, &written)
		}
		start := time.Now()
		if err := tg.gw.Apply(mustParse(t, strings.Replace(cfg, "%s", "2h", 1), vars)); err != nil {
			t.Fatal(err)
		}
		testutil.WaitFor(t, 15*time.Second, "the changed route's tunnels to close", func() bool {
			return len(tg.gw.proxy.Tunnels()) == 0
		})
		if d := time.Since(start); d > time.Duration(stalled-1)*time.Second {
			t.Errorf("closing %d stalled tunnels took %v: their stops ran one by one", stalled, d)
		}
	})
	t.Run("max_lifetime", func(t *testing.T) {
		var written atomic.Int64
		tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: ws, targets: [{address: {{b}}}]}]
routes: [{id: ws, upstream: ws, tunnel: {max_lifetime: 2s}}]
`, map[string]string{"b": floodBackend(t, &written)})
		stalledTunnel(t, tg, &written)
		testutil.WaitFor(t, 15*time.Second, "the tunnel to close at max_lifetime", func() bool {
			return len(tg.gw.proxy.Tunnels()) == 0
		})
		if l := tg.accessLines(1)[0]; l["tunnel_closed"] != "max_lifetime" {
			t.Errorf("tunnel_closed = %v, want max_lifetime", l["tunnel_closed"])
		}
	})
}

// TestUpgradeForwardsOnlyTheAllowedProtocol: of a client's Upgrade list only the protocol
// the route allowed (its first element) reaches the backend, so "websocket, h2c" does not
// offer the backend h2c; an HTTP/1.0 request's Upgrade is ignored (RFC 9110 §7.8).
func TestUpgradeForwardsOnlyTheAllowedProtocol(t *testing.T) {
	seen := make(chan string, 4)
	plain := serveConns(t, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			req, err := http.ReadRequest(br)
			if err != nil {
				return
			}
			seen <- strings.Join(req.Header.Values("Upgrade"), "|")
			io.WriteString(c, "HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n")
		}
	})
	tg := upstreamGateway(t, plain)
	for _, tc := range []struct {
		name, head, want string
	}{
		{"one", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n", "websocket"},
		{"versioned", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: WebSocket/13\r\n", "WebSocket/13"},
		{"h2c after", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: websocket, h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n", "websocket"},
		{"h2c in a second field", "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nUpgrade: h2c\r\n", "websocket"},
		{"http/1.0", "GET / HTTP/1.0\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := rawExchange(t, tg.addr, tc.head+"Connection: close\r\n\r\n", 3*time.Second)
			if got := <-seen; got != tc.want {
				t.Errorf("backend saw Upgrade %q, want %q", got, tc.want)
			}
			if !strings.HasPrefix(out, "HTTP/1.1 426") {
				t.Errorf("answer %q, want the backend's 426", firstLine(out))
			}
		})
	}
}

// TestSwitchToAnotherProtocol: a backend that answers a WebSocket upgrade with a 101 that is
// not a switch to WebSocket gets the client a 502 upstream_bad_response, not a tunnel: a 101
// to a protocol the request did not offer (RFC 9110 §7.8: it must not), one without Upgrade
// (RFC 9110 §15.2.2: it must name the protocol), and one whose Sec-WebSocket-Accept is
// missing or does not answer the request's key (RFC 6455 §4.1: the client fails it). Such a
// 101 is not a handshake (an application that passes on a status code it was given), and a
// tunnel would give the client a raw connection to the backend past the gateway's routes.
func TestSwitchToAnotherProtocol(t *testing.T) {
	// A 502 ends the exchange: the client asks for the close.
	closingHandshake := strings.Replace(wsHandshake, "\r\n\r\n", "\r\nConnection: close\r\n\r\n", 1)
	const accept = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" // answers wsHandshake's key
	for _, tc := range []struct {
		name, fields, want string
	}{
		{"h2c", "Upgrade: h2c\r\n" + accept, "HTTP/1.1 502"},
		{"other", "Upgrade: echo-proto\r\n" + accept, "HTTP/1.1 502"},
		{"same, other case and version", "Upgrade: WebSocket/13\r\n" + accept, "HTTP/1.1 101"},
		{"no Upgrade", accept, "HTTP/1.1 502"},
		{"no Sec-WebSocket-Accept", "Upgrade: websocket\r\n", "HTTP/1.1 502"},
		{"wrong Sec-WebSocket-Accept", "Upgrade: websocket\r\nSec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n", "HTTP/1.1 502"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := serveConns(t, func(c net.Conn) {
				if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
					io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\n"+tc.fields+"\r\n")
				}
			})
			tg := upstreamGateway(t, addr)
			out := rawExchange(t, tg.addr, closingHandshake, 3*time.Second)
			if !strings.HasPrefix(out, tc.want) {
				t.Fatalf("answer %q, want %s", firstLine(out), tc.want)
			}
			if tc.want == "HTTP/1.1 502" && !strings.Contains(out, "upstream_bad_response") {
				t.Errorf("answer without the reason: %q", out)
			}
		})
	}
	t.Run("no key", func(t *testing.T) {
		addr := serveConns(t, func(c net.Conn) {
			if _, err := http.ReadRequest(bufio.NewReader(c)); err == nil {
				io.WriteString(c, "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"+accept+"\r\n")
			}
		})
		tg := upstreamGateway(t, addr)
		out := rawExchange(t, tg.addr, strings.Replace(closingHandshake, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", "", 1), 3*time.Second)
		if !strings.HasPrefix(out, "HTTP/1.1 502") {
			t.Fatalf("answer %q to a handshake without a key, want 502", firstLine(out))
		}
	})
}

// TestTunnelRouteChangedBySecondReload: tunnels outlive a reload that kept their routes
// (built anew by the full reload), then a second reload changes the routes: the tunnels are
// closed after the grace, on a plain route and on a split route's second share.
func TestTunnelRouteChangedBySecondReload(t *testing.T) {
	a, b := newWSBackend(t), newWSBackend(t)
	const cfg = `
listeners: [{address: 127.0.0.1:0}]
upstreams:
  - {id: a, targets: [{address: {{a}}}]}
  - {id: b, targets: [{address: {{b}}}]}
routes:
  - {id: change, match: {path_prefix: /change}, upstream: a, tunnel: {idle_timeout: %s}}
  - id: split
    match: {path_prefix: /split}
    tunnel: {idle_timeout: %s}
    split:
      upstreams: [{upstream: a, weight: 1}, {upstream: b, weight: 0}]
      rules: [{headers: [{name: X-Share, exact: b}], upstream: b}]
  - {id: other, match: {path_prefix: /other}, upstream: a%o}
shutdown_grace: 200ms
`
	vars := map[string]string{"a": hostport(a.Server), "b": hostport(b.Server)}
	conf := func(idle, other string) string {
		return strings.Replace(strings.ReplaceAll(cfg, "%s", idle), "%o", other, 1)
	}
	tg := startGateway(t, conf("1h", ""), vars)
	plain := dialWS(t, tg, "/change")
	onB := dialWSHeader(t, tg, "/split", http.Header{"X-Share": {"b"}})
	if b.upgrades.Load() != 1 {
		t.Fatalf("the split tunnel did not go to share b")
	}
	// First reload: another route changes, these do not.
	if err := tg.gw.Apply(mustParse(t, conf("1h", ", max_body_bytes: 1000"), vars)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(400 * time.Millisecond) // past the grace: the first generation retires
	for _, c := range []*websocket.Conn{plain, onB} {
		echo(t, c, "still open")
	}
	if err := tg.gw.Apply(mustParse(t, conf("2h", ", max_body_bytes: 1000"), vars)); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for name, c := range map[string]*websocket.Conn{"plain": plain, "split share b": onB} {
		_, _, err := c.Read(ctx)
		if st := websocket.CloseStatus(err); st != websocket.StatusGoingAway {
			t.Errorf("%s route's tunnel: %v, want a 1001 close", name, err)
		}
	}
}

// TestTunnelLatencyIsTheHandshake: the latency a tunnel reports to the upstream's balancer
// (and passive health) is its handshake's, not its lifetime: a peak-EWMA balancer that took
// a WebSocket's minutes as one response's latency would shun its target for minutes after.
func TestTunnelLatencyIsTheHandshake(t *testing.T) {
	be := newWSBackend(t)
	tg := upstreamGateway(t, hostport(be.Server), "balancer: {policy: ewma}")
	c := dialWS(t, tg, "/ws")
	echo(t, c, "one")
	time.Sleep(2 * time.Second) // the tunnel's lifetime
	echo(t, c, "two")
	c.Close(websocket.StatusNormalClosure, "")
	tg.accessLines(1)
	u := tg.gw.Current().Upstreams["b"]
	e, ok := u.Current().Balancer.(*balancer.EWMA)
	if !ok {
		t.Fatalf("balancer %T, want *balancer.EWMA", u.Current().Balancer)
	}
	if l := e.Latency(u.Current().Targets[0]); l > time.Second {
		t.Errorf("EWMA latency after a 2s tunnel: %v, want the handshake's", l)
	}
}
