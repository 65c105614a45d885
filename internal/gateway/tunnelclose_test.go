package gateway

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/coder/websocket"

	"sluice/internal/proxyproto"
	"sluice/internal/testutil"
)

// TestTunnelClosedByWhoSentClose: a WebSocket tunnel's close reason names the side that
// began the closing handshake (sent the first Close frame), not the side whose TCP close
// came first: RFC 6455 §7.1.1 has the server close the TCP connection first, whoever began,
// so by TCP alone every normal close read as upstream_closed.
func TestTunnelClosedByWhoSentClose(t *testing.T) {
	for _, tc := range []struct {
		name    string
		byQuit  bool // the backend closes when it gets "quit"; else the client closes
		want    string
		backend websocket.StatusCode // the status the backend's read ends with
	}{
		{name: "client", want: "client_closed", backend: websocket.StatusNormalClosure},
		{name: "backend", byQuit: true, want: "upstream_closed", backend: -1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ended := make(chan websocket.StatusCode, 1)
			be := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				c, err := websocket.Accept(w, r, nil)
				if err != nil {
					return
				}
				defer c.CloseNow()
				for {
					typ, msg, err := c.Read(context.Background())
					if err != nil {
						ended <- websocket.CloseStatus(err)
						return
					}
					if string(msg) == "quit" {
						c.Close(websocket.StatusNormalClosure, "bye")
						ended <- -1
						return
					}
					c.Write(context.Background(), typ, msg)
				}
			}))
			defer be.Close()
			tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: ws, targets: [{address: {{b}}}]}]
routes: [{id: ws, upstream: ws}]
`, map[string]string{"b": hostport(be)})
			c := dialWS(t, tg, "/ws")
			echo(t, c, "hello")
			if tc.byQuit {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				c.Write(ctx, websocket.MessageText, []byte("quit"))
				if _, _, err := c.Read(ctx); websocket.CloseStatus(err) != websocket.StatusNormalClosure {
					t.Fatalf("client read: %v, want the backend's 1000", err)
				}
			} else {
				c.Close(websocket.StatusNormalClosure, "bye")
			}
			if st := <-ended; st != tc.backend {
				t.Errorf("backend ended with %v, want %v", st, tc.backend)
			}
			if l := tg.accessLines(1)[0]; l["tunnel_closed"] != tc.want {
				t.Errorf("tunnel_closed = %v, want %s", l["tunnel_closed"], tc.want)
			}
			if v, _ := gathered(t, tg).value("sluice_tunnels_closed_total", map[string]string{"route": "ws", "reason": tc.want}); v != 1 {
				t.Errorf("sluice_tunnels_closed_total{reason=%q} = %v, want 1", tc.want, v)
			}
		})
	}
}

// TestNoSecondCloseFrame: a stop during a closing handshake (the client's Close frame went
// to the backend, whose answer has not come) writes no Close 1001 after it: an endpoint
// sends nothing after its Close frame (RFC 6455 §5.5.1). The client, which got no Close
// yet, still gets the 1001.
func TestNoSecondCloseFrame(t *testing.T) {
	got := make(chan []byte, 1)
	addr := rawWSBackend(t, func(c net.Conn, br *bufio.Reader) {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, _ := io.ReadAll(br) // never answers the Close
		got <- b
	})
	tg := startGateway(t, `
listeners: [{address: 127.0.0.1:0}]
upstreams: [{id: b, targets: [{address: {{b}}}]}]
routes: [{id: all, upstream: b}]
`, map[string]string{"b": addr})
	c, br := rawWebSocket(t, tg)
	closeFrame := []byte{0x88, 0x82, 1, 2, 3, 4, 0x03 ^ 1, 0xe8 ^ 2} // masked, 1000
	c.Write(closeFrame)
	testutil.WaitFor(t, 5*time.Second, "the Close frame to go through", func() bool {
		ts := tg.gw.proxy.Tunnels()
		return len(ts) == 1 && ts[0].BytesUp == int64(len(closeFrame))
	})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	tg.gw.Shutdown(ctx)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if down, _ := io.ReadAll(br); string(down) != "\x88\x02\x03\xe9" {
		t.Errorf("client got % x, want the 1001 Close frame", down)
	}
	if up := <-got; string(up) != string(closeFrame) {
		t.Errorf("backend got % x, want the client's Close frame alone (% x)", up, closeFrame)
	}
}

// TestTunnelListsTheRealClient: /admin/tunnels names a tunnel's client as the access log
// does: on a proxy_protocol listener the client the PROXY header named (its address without
// a port, which the gateway does not keep), not the load balancer; a direct client with its
// port.
func TestTunnelListsTheRealClient(t *testing.T) {
	be := newWSBackend(t)
	for _, tc := range []struct {
		name, listener string
		preface        []byte
		want           string // "": the test client's own address
	}{
		{name: "behind a load balancer", listener: "{address: 127.0.0.1:0, proxy_protocol: true, trusted_proxies: [127.0.0.1]}",
			preface: proxyproto.AppendV1(nil, netip.MustParseAddrPort("198.51.100.7:51000"), netip.MustParseAddrPort("10.0.0.1:443")),
			want:    "198.51.100.7"},
		{name: "direct", listener: "{address: 127.0.0.1:0}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := startGateway(t, `
listeners: [`+tc.listener+`]
upstreams: [{id: ws, targets: [{address: {{b}}}]}]
routes: [{id: ws, upstream: ws}]
`, map[string]string{"b": hostport(be.Server)})
			c, err := net.Dial("tcp", tg.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.Write(append(tc.preface, wsHandshake...))
			if resp, err := http.ReadResponse(bufio.NewReader(c), nil); err != nil || resp.StatusCode != 101 {
				t.Fatalf("handshake: %v %v", resp, err)
			}
			want := tc.want
			if want == "" {
				want = c.LocalAddr().String()
			}
			testutil.WaitFor(t, 5*time.Second, "the tunnel to be listed", func() bool { return len(tg.gw.proxy.Tunnels()) == 1 })
			if ts := tg.gw.proxy.Tunnels(); ts[0].Client != want {
				t.Errorf("tunnels: %+v, want client %s", ts, want)
			}
		})
	}
}
